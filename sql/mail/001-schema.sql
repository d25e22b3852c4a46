-- 001-schema.sql — mmmail's store: domains, users, mailboxes, aliases, messages, filters,
-- greylisting.  Message contents live in files (messages.file, relative to the spool
-- directory); a row exists only once its file is durable (mmsmtpd writes, fsyncs and renames
-- the file, then commits the row, then answers 250).

CREATE TABLE domains (
  id        serial PRIMARY KEY,
  name      text NOT NULL UNIQUE CHECK (name = lower(name) AND name <> ''),
  created   timestamptz NOT NULL DEFAULT now()
);

-- password_hash is a crypt(3) string ($y$ yescrypt or $6$ SHA-512); an empty string never
-- matches.  is_admin: may manage domains, users, mailboxes, aliases and header filters in the
-- web interface.
CREATE TABLE users (
  id            serial PRIMARY KEY,
  domain_id     integer NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
  name          text NOT NULL CHECK (name = lower(name) AND name <> ''),
  password_hash text NOT NULL DEFAULT '',
  is_admin      boolean NOT NULL DEFAULT false,
  active        boolean NOT NULL DEFAULT true,
  created       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (domain_id, name)
);

-- Several mailboxes per user: user@domain delivers to the mailbox named INBOX,
-- user+NAME@domain to the mailbox NAME (POP3 logins "user" and "user+NAME" likewise).
-- NULL limits mean none.
CREATE TABLE mailboxes (
  id            serial PRIMARY KEY,
  user_id       integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name          text NOT NULL CHECK (name <> ''),
  max_bytes     bigint CHECK (max_bytes IS NULL OR max_bytes >= 0),
  max_messages  integer CHECK (max_messages IS NULL OR max_messages >= 0),
  created       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, name)
);

-- Aliases: the local part of a recipient in DOMAIN matched by PATTERN ('exact': equal, 'regex':
-- a PostgreSQL regular expression matched against the whole local part) is delivered to
-- TARGET, an address (user@domain or user+mailbox@domain in a local domain).  Exact aliases
-- win over patterns; among patterns the lowest priority number wins.  A real user's address
-- wins over every alias except an exact one.
CREATE TABLE aliases (
  id         serial PRIMARY KEY,
  domain_id  integer NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
  kind       text NOT NULL DEFAULT 'exact' CHECK (kind IN ('exact', 'regex')),
  pattern    text NOT NULL CHECK (pattern <> ''),
  target     text NOT NULL CHECK (target LIKE '%_@_%'),
  priority   integer NOT NULL DEFAULT 100,
  UNIQUE (domain_id, kind, pattern, target)
);

-- One row per delivered copy.  FILE is relative to the spool directory; UIDL is the POP3
-- unique id (RFC 1939 7), stable for the message's life.
CREATE TABLE messages (
  id          bigserial PRIMARY KEY,
  mailbox_id  integer NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  size        bigint NOT NULL CHECK (size >= 0),
  received    timestamptz NOT NULL DEFAULT now(),
  file        text NOT NULL UNIQUE,
  uidl        text NOT NULL UNIQUE CHECK (uidl ~ '^[!-~]{1,70}$'),
  sender      text NOT NULL DEFAULT ''
);
CREATE INDEX messages_mailbox ON messages (mailbox_id, id);

-- Header filter rules (administrator): a message with a header field NAME (case-insensitive;
-- '*' any field) whose value matches REGEX (Perl syntax, cl-ppcre, case-insensitive) is
-- rejected (550), discarded (250, not stored) or tagged (stored with "X-Crow-Tag: TAG").
-- DOMAIN_ID NULL: every domain.  Lower priority numbers are tried first; the first match wins.
CREATE TABLE header_filters (
  id         serial PRIMARY KEY,
  domain_id  integer REFERENCES domains(id) ON DELETE CASCADE,
  header     text NOT NULL CHECK (header <> ''),
  regex      text NOT NULL CHECK (regex <> ''),
  action     text NOT NULL CHECK (action IN ('reject', 'discard', 'tag')),
  tag        text NOT NULL DEFAULT '',
  priority   integer NOT NULL DEFAULT 100,
  active     boolean NOT NULL DEFAULT true,
  created    timestamptz NOT NULL DEFAULT now()
);

-- Per-user envelope filters (set by the user in the web interface): a message for one of the
-- user's addresses whose envelope sender matches SENDER_PATTERN and recipient address matches
-- RECIPIENT_PATTERN (shell-style globs, case-insensitive: '*' any run, '?' one character;
-- '' or '*' matches anything, the null sender <> too) is accepted, rejected (550 at RCPT or
-- DATA) or discarded.  Lower priority numbers first; the first match wins; none: accept.
CREATE TABLE envelope_filters (
  id                 serial PRIMARY KEY,
  user_id            integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  sender_pattern     text NOT NULL DEFAULT '*',
  recipient_pattern  text NOT NULL DEFAULT '*',
  action             text NOT NULL CHECK (action IN ('accept', 'reject', 'discard')),
  priority           integer NOT NULL DEFAULT 100,
  created            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX envelope_filters_user ON envelope_filters (user_id, priority, id);

-- Greylisting triplets (client address, envelope sender, recipient): the first attempt is
-- deferred (451); a retry after the configured delay passes and is remembered.
CREATE TABLE greylist (
  client     text NOT NULL,
  sender     text NOT NULL,
  recipient  text NOT NULL,
  first_seen timestamptz NOT NULL DEFAULT now(),
  last_seen  timestamptz NOT NULL DEFAULT now(),
  passed     boolean NOT NULL DEFAULT false,
  attempts   integer NOT NULL DEFAULT 1,
  PRIMARY KEY (client, sender, recipient)
);
