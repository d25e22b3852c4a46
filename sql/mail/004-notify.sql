-- 004-notify.sql — a change to what decides delivery (domains, users, mailboxes, aliases,
-- envelope and header filters) sends NOTIFY mail_changed with the table's name, so servers
-- that cache resolutions and rules (mmsmtpd's recipient and filter caches) drop them at once.
CREATE FUNCTION mail_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('mail_changed', TG_TABLE_NAME);
  RETURN NULL;
END
$$;

CREATE TRIGGER domains_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domains
  FOR EACH STATEMENT EXECUTE FUNCTION mail_changed();
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION mail_changed();
CREATE TRIGGER mailboxes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mailboxes
  FOR EACH STATEMENT EXECUTE FUNCTION mail_changed();
CREATE TRIGGER aliases_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON aliases
  FOR EACH STATEMENT EXECUTE FUNCTION mail_changed();
CREATE TRIGGER envelope_filters_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON envelope_filters
  FOR EACH STATEMENT EXECUTE FUNCTION mail_changed();
CREATE TRIGGER header_filters_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON header_filters
  FOR EACH STATEMENT EXECUTE FUNCTION mail_changed();
