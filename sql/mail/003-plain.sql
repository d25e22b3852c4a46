-- 003-plain.sql — messages.plain: true when the stored file can go out as a POP3 RETR
-- response as it is (no line starts with "." and it ends with CRLF), so mmpop3d sends it with
-- sendfile instead of byte-stuffing a copy.  Rows from before default to false (stuffed).
ALTER TABLE messages ADD COLUMN plain boolean NOT NULL DEFAULT false;
