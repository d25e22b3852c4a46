-- 002-resolve.sql — address resolution in one round trip: mail_resolve(domain, local part)
-- returns the mailboxes a recipient address delivers to (none: unknown), with each mailbox's
-- limits and, only when it has limits, its usage.

-- The mailbox of a real user's address: USER@domain (INBOX) or USER+NAME@domain (mailbox
-- NAME).  The user part is case-insensitive, the mailbox name is not.
CREATE FUNCTION mail_mailbox(p_domain text, p_local text)
RETURNS TABLE (mailbox_id integer, user_id integer, max_bytes bigint, max_messages integer,
               used_bytes bigint, used_messages bigint, has_filters boolean, address text)
LANGUAGE sql STABLE AS $$
  SELECT m.id, u.id, m.max_bytes, m.max_messages,
         CASE WHEN m.max_bytes IS NULL AND m.max_messages IS NULL THEN 0
              ELSE (SELECT coalesce(sum(size), 0) FROM messages WHERE messages.mailbox_id = m.id) END,
         CASE WHEN m.max_bytes IS NULL AND m.max_messages IS NULL THEN 0
              ELSE (SELECT count(*) FROM messages WHERE messages.mailbox_id = m.id) END,
         EXISTS (SELECT 1 FROM envelope_filters f WHERE f.user_id = u.id),
         u.name || '@' || d.name
  FROM domains d JOIN users u ON u.domain_id = d.id JOIN mailboxes m ON m.user_id = u.id
  WHERE d.name = lower(p_domain) AND u.active
    AND u.name = lower(split_part(p_local, '+', 1))
    AND m.name = CASE WHEN position('+' IN p_local) > 0
                      THEN substr(p_local, position('+' IN p_local) + 1) ELSE 'INBOX' END
$$;

-- Exact aliases first (every target of the first priority found), then the real user, then
-- the first matching pattern alias.  Alias targets are resolved as real users' addresses
-- (one level: an alias never points at another alias).
CREATE FUNCTION mail_resolve(p_domain text, p_local text)
RETURNS TABLE (mailbox_id integer, user_id integer, max_bytes bigint, max_messages integer,
               used_bytes bigint, used_messages bigint, has_filters boolean, address text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  dom integer;
  t record;
  hit boolean := false;
BEGIN
  SELECT id INTO dom FROM domains WHERE name = lower(p_domain);
  IF dom IS NULL THEN RETURN; END IF;
  FOR t IN SELECT a.target FROM aliases a
           WHERE a.domain_id = dom AND a.kind = 'exact' AND a.pattern = lower(p_local)
           ORDER BY a.priority, a.id LOOP
    RETURN QUERY SELECT * FROM mail_mailbox(split_part(t.target, '@', 2), split_part(t.target, '@', 1));
    hit := true;
  END LOOP;
  IF hit THEN RETURN; END IF;
  RETURN QUERY SELECT * FROM mail_mailbox(p_domain, p_local);
  IF FOUND THEN RETURN; END IF;
  FOR t IN SELECT a.target FROM aliases a
           WHERE a.domain_id = dom AND a.kind = 'regex' AND lower(p_local) ~ a.pattern
           ORDER BY a.priority, a.id LIMIT 1 LOOP
    RETURN QUERY SELECT * FROM mail_mailbox(split_part(t.target, '@', 2), split_part(t.target, '@', 1));
  END LOOP;
END
$$;
