-- demo.sql — the demo data make run and the tests load (idempotent): domain crow.test, user
-- demo (password demo) with mailboxes INBOX and work, administrator admin (password admin),
-- alias postmaster -> demo, and a pattern alias info-* -> demo.  The hashes are crypt(3)
-- SHA-512 strings made with `openssl passwd -6 -salt crowdemo0 demo` (and crowadmin / admin).
INSERT INTO domains (name) VALUES ('crow.test') ON CONFLICT (name) DO NOTHING;

INSERT INTO users (domain_id, name, password_hash)
  SELECT id, 'demo', '$6$crowdemo0$Luk3ljx2ulBDi7qtfZ4SfXEr53AgPyGfAyeKKP1BnQCDkXPaRCEL.bRXveQmLz7dTBK9jK76BwFru3Ky./WsJ/'
  FROM domains WHERE name = 'crow.test'
  ON CONFLICT (domain_id, name) DO NOTHING;
INSERT INTO users (domain_id, name, password_hash, is_admin)
  SELECT id, 'admin', '$6$crowadmin$NNHIu9sXdz7dnE0PIzoa9.G94qNJBxLl8Tb18I7JU5hFcA/1tCvzOj.BwHjzPyqOvIS3tzBQaIS7g68u.RE57/', true
  FROM domains WHERE name = 'crow.test'
  ON CONFLICT (domain_id, name) DO NOTHING;

INSERT INTO mailboxes (user_id, name)
  SELECT u.id, b.name FROM users u JOIN domains d ON d.id = u.domain_id,
         (VALUES ('INBOX'), ('work')) AS b(name)
  WHERE d.name = 'crow.test' AND u.name = 'demo'
  ON CONFLICT (user_id, name) DO NOTHING;
INSERT INTO mailboxes (user_id, name)
  SELECT u.id, 'INBOX' FROM users u JOIN domains d ON d.id = u.domain_id
  WHERE d.name = 'crow.test' AND u.name = 'admin'
  ON CONFLICT (user_id, name) DO NOTHING;

INSERT INTO aliases (domain_id, kind, pattern, target)
  SELECT id, 'exact', 'postmaster', 'demo@crow.test' FROM domains WHERE name = 'crow.test'
  ON CONFLICT DO NOTHING;
INSERT INTO aliases (domain_id, kind, pattern, target)
  SELECT id, 'regex', '^info-[a-z0-9]+$', 'demo@crow.test' FROM domains WHERE name = 'crow.test'
  ON CONFLICT DO NOTHING;
