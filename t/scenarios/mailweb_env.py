"""mailweb_env.py — shared set-up for the mail web scenarios (mailweb.t, mailweb-browser.t):
a private PostgreSQL cluster through tools/pg in a temporary directory with the mail schema
and demo data, and crow-httpd configs made from etc/httpd.conf on a free port."""
import glob
import os
import subprocess

from tap import BIN, ROOT, demo_site_conf

PG = os.path.join(ROOT, "tools", "pg")
DB = "mail"


def have_postgres():
    return bool(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))


class Cluster:
    """A tools/pg cluster under DIR (as root tools/pg runs it as an unprivileged user)."""

    def __init__(self, d):
        self.dir = d

    def pg(self, *args, **kw):
        return subprocess.run([PG, "-d", self.dir] + list(args), capture_output=True, text=True,
                              timeout=kw.get("timeout", 120), input=kw.get("input"))

    def start(self):
        """Starts the cluster and loads sql/mail with the demo data.  Returns (ok, output)."""
        r = self.pg("start")
        if r.returncode != 0:
            return False, r.stdout + r.stderr
        r2 = self.pg("migrate", DB, os.path.join(ROOT, "sql", "mail"),
                     os.path.join(ROOT, "sql", "mail", "demo.sql"))
        return r2.returncode == 0, r.stdout + r.stderr + r2.stdout + r2.stderr

    def conninfo(self):
        return self.pg("conninfo", DB).stdout.strip()

    def sql(self, query):
        """Runs QUERY with psql; returns its rows, columns joined by |, rows by newlines."""
        r = self.pg("psql", "-d", DB, "-Atqc", query)
        if r.returncode != 0:
            return "ERROR: " + r.stderr.strip()
        return r.stdout.strip()

    def destroy(self):
        self.pg("destroy")


def write_conf(tmp, name, port, conninfo):
    """Writes TMP/NAME: etc/httpd.conf on 127.0.0.1:PORT without TLS, serving etc/site, with
    mail-conninfo CONNINFO (none when None).  Returns its path."""
    return demo_site_conf(os.path.join(tmp, name), port, drop=("mail-conninfo",),
                          extra="" if conninfo is None else 'mail-conninfo "%s"\n' % conninfo)


def start_httpd(conf):
    """Starts crow-httpd -f CONF in the foreground, its output into CONF.log.  Returns the Popen."""
    log = open(conf + ".log", "w")
    try:
        return subprocess.Popen([os.path.join(BIN, "crow-httpd"), "-f", conf, "--foreground"],
                                stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()
