#!/usr/bin/env python3
# test/integration/test_clusterctl_basic.py — clusterctl migrate, cluster add, storage add and
# status against a real PostgreSQL, Redis and two real storaged (run under with-services.sh).
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import procs  # noqa: E402

CLUSTERCTL = procs.build_path("clusterctl", "clusterctl")
STORAGED = procs.build_path("storaged", "storaged")
PSQL = "psql"

failures = []


def check(cond, what):
    print(("ok - " if cond else "FAIL - ") + what, flush=True)
    if not cond:
        failures.append(what)


def free_port():
    return procs.free_port()


def ctl(*args, env=None, db=True, timeout=30):
    """Runs clusterctl; returns (rc, stdout, stderr)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    if not db:
        e.pop("STF_DB_URL", None)
    p = subprocess.run([CLUSTERCTL] + list(args), capture_output=True, text=True, env=e,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def ctl_expect(rc_want, args, err_has=None, out_has=None, **kw):
    rc, out, err = ctl(*args, **kw)
    what = "clusterctl %s -> exit %d" % (" ".join(args), rc_want)
    ok = rc == rc_want
    if rc_want != 0:
        # every error is exactly one line on stderr
        ok = ok and err.count("\n") == 1 and err.startswith("clusterctl: ")
    if err_has is not None:
        ok = ok and err_has in err
    if out_has is not None:
        ok = ok and out_has in out
    if not ok:
        print("   got rc=%d stdout=%r stderr=%r" % (rc, out, err))
    check(ok, what + ("" if err_has is None else " (%s)" % err_has))
    return rc, out, err


def sql(query, dbname=None):
    args = [PSQL, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", query]
    if dbname:
        args += ["-d", dbname]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()


def http_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def start_storaged(p, name):
    root = p.path(name)
    os.mkdir(root)
    d = p.spawn(name, [STORAGED, "--init", "--root", root, "--listen", "127.0.0.1:0"])
    host, port = d.wait_listening()
    uri = "http://%s:%d" % (host, port)
    d.wait_http(host, port, "/_stats")
    return uri


class RedisSub:
    """A raw RESP subscriber on one channel (stdlib only)."""

    def __init__(self, channel):
        self.sock = socket.create_connection(("127.0.0.1", int(os.environ["REDIS_PORT"])), 5)
        self.sock.sendall(b"SUBSCRIBE %s\r\n" % channel.encode())
        self.buf = b""
        self.read_message()  # the subscribe confirmation

    def read_line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_message(self):
        head = self.read_line()
        assert head.startswith(b"*"), head
        items = []
        for _ in range(int(head[1:])):
            t = self.read_line()
            if t.startswith(b"$"):
                items.append(self.read_line().decode())
            else:
                items.append(t[1:].decode())
        return items


def test_cli_basics():
    rc, out, _ = ctl("--help", db=False)
    check(rc == 0 and all(c in out for c in ("migrate", "cluster add", "storage add", "status")),
          "--help lists the commands")
    rc, out, _ = ctl("storage", "add", "--help", db=False)
    check(rc == 0 and "--cluster" in out and "--mode" in out, "storage add --help")
    ctl_expect(2, [], err_has="missing command")
    ctl_expect(2, ["bogus"], err_has="unknown command 'bogus'")
    ctl_expect(2, ["cluster"], err_has="missing subcommand")
    ctl_expect(2, ["status", "--bogus"], err_has="unknown option '--bogus'")
    ctl_expect(2, ["status", "extra"], err_has="unexpected argument 'extra'")


def test_migrate():
    ctl_expect(1, ["status"], err_has="clusterctl migrate")
    ctl_expect(0, ["migrate"], out_has="applied 0001_create_schema")
    ctl_expect(0, ["migrate"], out_has="up to date")
    rows = sql("SELECT version, name FROM schema_migrations ORDER BY version")
    want = "\n".join("%d|%s" % (int(f[:4]), f[:-4]) for f in
                     sorted(os.listdir(os.path.join(os.environ["STF_SRC"], "migrations")))
                     if f.endswith(".sql"))
    check(rows == want and rows.startswith("1|0001_create_schema"),
          "schema_migrations records each migration once (%r)" % rows)
    tables = sql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
                 "WHERE schemaname = 'public'")
    check(set("buckets,clusters,jobs,mode_history,objects,schema_migrations,storages".split(","))
          <= set(tables.split(",")), "tables created (%s)" % tables)

    # Concurrent migrate of a fresh database: exactly one applies, the rest wait and skip.
    sql("CREATE DATABASE concurrent")
    url = os.environ["STF_DB_URL"].rsplit("/", 1)[0] + "/concurrent"
    ps = [subprocess.Popen([CLUSTERCTL, "--db", url, "migrate"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True) for _ in range(6)]
    res = [p.communicate(timeout=60) + (p.returncode,) for p in ps]
    applied = sum("applied 0001_create_schema" in o for o, _, _ in res)
    check(all(rc == 0 for _, _, rc in res) and applied == 1,
          "6 concurrent migrate: all exit 0, one applied (%r)" % (res,))
    check(sql("SELECT count(*) FROM schema_migrations", "concurrent") == str(want.count("|")),
          "concurrent migrate recorded each migration once")

    # --db wins over STF_DB_URL; an unreachable database is one line and exit 1.
    ctl_expect(1, ["--db", "postgresql://nobody@127.0.0.1:1/x", "migrate"],
               err_has="cannot connect to PostgreSQL")
    # The config file's [database] url is used when neither --db nor STF_DB_URL is given.
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("[database]\nurl = %s\n" % os.environ["STF_DB_URL"])
        conf = f.name
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("[database]\nurll = x\n")
        badconf = f.name
    try:
        ctl_expect(0, ["-c", conf, "migrate"], out_has="up to date", db=False)
        ctl_expect(1, ["-c", badconf, "migrate"], err_has="urll", db=False)
    finally:
        os.unlink(conf)
        os.unlink(badconf)


def test_cluster_add():
    sub = RedisSub("stf:modes")
    ctl_expect(0, ["cluster", "add", "c1"], out_has="added cluster c1")
    cid = sql("SELECT id FROM clusters WHERE name = 'c1'")
    msg = sub.read_message()
    check(msg == ["message", "stf:modes", "cluster %s" % cid], "cluster add announced (%r)" % msg)
    ctl_expect(1, ["cluster", "add", "c1"], err_has="cluster c1 already exists")
    ctl_expect(0, ["cluster", "add", "c2"])
    for bad in ["bad name", "-x", ".x", "a" * 64, "c/1", "", "c\u00e9"]:
        ctl_expect(2, ["cluster", "add", "--", bad], err_has="bad cluster name")
    ctl_expect(2, ["cluster", "add", "-x"], err_has="unknown option '-x'")
    ctl_expect(2, ["cluster", "add"], err_has="missing argument")
    ctl_expect(2, ["cluster", "add", "c3", "c4"], err_has="unexpected argument")
    check(sql("SELECT string_agg(name, ',' ORDER BY name) FROM clusters") == "c1,c2",
          "only c1 and c2 exist")
    hist = sql("SELECT from_mode IS NULL, to_mode, reason, program FROM mode_history "
               "WHERE target_kind = 'cluster' AND target_name = 'c1'")
    check(hist == "t|rw|added|clusterctl", "cluster history row (%r)" % hist)


def expected_actor():
    if os.getuid() == 0 and os.environ.get("SUDO_USER"):
        return os.environ["SUDO_USER"]
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def test_storage_add(uri1, uri2, dead_uri, hang_uri):
    sub = RedisSub("stf:modes")
    ctl_expect(0, ["storage", "add", "s1", "--cluster", "c1", "--uri", uri1],
               out_has="added storage s1")
    sid = sql("SELECT id FROM storages WHERE name = 's1'")
    msg = sub.read_message()
    check(msg == ["message", "stf:modes", "storage %s" % sid], "storage add announced (%r)" % msg)
    ctl_expect(0, ["storage", "add", "s2", "--uri", uri2, "--cluster", "c1", "--mode", "rw"])
    ctl_expect(0, ["storage", "add", "s3", "--cluster", "c1", "--uri", dead_uri])
    ctl_expect(0, ["storage", "add", "h1", "--cluster", "c2", "--uri", hang_uri, "--mode",
                   "spare"])

    ctl_expect(1, ["storage", "add", "s1", "--cluster", "c1", "--uri", "http://127.0.0.1:9"],
               err_has="storage s1 already exists")
    ctl_expect(1, ["storage", "add", "s9", "--cluster", "c1", "--uri", uri1],
               err_has="uri %s is already used by storage s1" % uri1)
    ctl_expect(1, ["storage", "add", "s9", "--cluster", "nope", "--uri", "http://127.0.0.1:9"],
               err_has="cluster nope does not exist")
    for bad in ["https://127.0.0.1:9", "http://127.0.0.1:9/", "http://127.0.0.1:9/x",
                "http://127.0.0.1", "http://127.0.0.1:0", "http://127.0.0.1:70000",
                "http://u@127.0.0.1:9", "http://:9", "127.0.0.1:9", "http://h:9?x=1"]:
        ctl_expect(2, ["storage", "add", "s9", "--cluster", "c1", "--uri", bad],
                   err_has="bad uri")
    ctl_expect(0, ["storage", "add", "v6", "--cluster", "c2", "--uri", "http://[::1]:9",
                   "--mode", "spare"])
    for mode in ["ro", "down", "repair", "RW", ""]:
        ctl_expect(2, ["storage", "add", "s9", "--cluster", "c1", "--uri", "http://127.0.0.1:9",
                       "--mode", mode], err_has="bad mode")
    ctl_expect(2, ["storage", "add", "s9", "--uri", "http://127.0.0.1:9"],
               err_has="missing --cluster")
    ctl_expect(2, ["storage", "add", "s9", "--cluster", "c1"], err_has="missing --uri")
    ctl_expect(2, ["storage", "add", "bad name", "--cluster", "c1", "--uri",
                   "http://127.0.0.1:9"], err_has="bad storage name")
    ctl_expect(2, ["storage", "add", "s9", "--cluster"], err_has="needs a value")
    check(sql("SELECT count(*) FROM storages WHERE name = 's9'") == "0", "no refused row stored")

    hist = sql("SELECT from_mode IS NULL, to_mode, reason, actor, program FROM mode_history "
               "WHERE target_kind = 'storage' AND target_name = 's1'")
    check(hist == "t|rw|added|%s|clusterctl" % expected_actor(), "storage history row (%r)" % hist)
    hist = sql("SELECT to_mode FROM mode_history WHERE target_kind = 'storage' "
               "AND target_name = 'h1'")
    check(hist == "spare", "spare history row")

    # A cluster that holds objects only takes spares.
    sql("INSERT INTO buckets (name) VALUES ('b1')")
    sql("INSERT INTO objects (bucket_id, name, internal_name, cluster_id, size, etag) "
        "SELECT b.id, 'o1', repeat('a', 32), c.id, 12345, repeat('0', 32) "
        "FROM buckets b, clusters c WHERE b.name = 'b1' AND c.name = 'c1'")
    ctl_expect(1, ["storage", "add", "s4", "--cluster", "c1", "--uri", "http://127.0.0.1:19"],
               err_has="add s4 with --mode spare, then run `clusterctl repair s4`")
    check(sql("SELECT count(*) FROM storages WHERE name = 's4'") == "0", "refused rw not stored")
    ctl_expect(0, ["storage", "add", "s4", "--cluster", "c1", "--uri",
                   "http://127.0.0.1:%d" % free_port(), "--mode", "spare"])


def test_status(uri1, uri2):
    for state, n in (("pending", 2), ("running", 1), ("failed", 3), ("done", 4)):
        for _ in range(n):
            sql("INSERT INTO jobs (kind, state) VALUES ('verify', '%s')" % state)

    t0 = time.monotonic()
    rc, out, err = ctl("status", "--json")
    elapsed = time.monotonic() - t0
    check(rc == 0 and err == "", "status --json exit 0, quiet stderr (%r)" % err)
    check(elapsed < 5, "status bounded by short timeouts (%.1f s, one storaged hangs)" % elapsed)
    st = json.loads(out)
    check(list(st.keys()) == ["clusters", "jobs"], "top-level keys")
    check(st["jobs"] == {"pending": 2, "running": 1, "failed": 3}, "job counts (%r)" % st["jobs"])
    names = [c["name"] for c in st["clusters"]]
    check(names == ["c1", "c2"], "clusters in name order")
    c1, c2 = st["clusters"]
    check(list(c1.keys()) == ["name", "mode", "forced_mode", "objects", "bytes", "storages"],
          "cluster keys (%r)" % list(c1.keys()))
    check(c1["objects"] == 1 and c1["bytes"] == 12345, "objects and bytes of c1")
    check(c1["mode"] == "rw" and c1["forced_mode"] is None,
          "c1 effective rw: 3 rw members + a spare (%r)" % c1["mode"])
    check(c2["mode"] == "down" and c2["objects"] == 0 and c2["bytes"] == 0,
          "c2 with only spares is down")
    by = {s["name"]: s for c in st["clusters"] for s in c["storages"]}
    check([s["name"] for s in c1["storages"]] == ["s1", "s2", "s3", "s4"], "c1 storages")
    check(list(by["s1"].keys()) == ["name", "mode", "uri", "reachable", "bytes_used",
                                    "bytes_free", "files"], "storage keys")
    for name, uri in (("s1", uri1), ("s2", uri2)):
        s = by[name]
        direct = http_json(uri + "/_stats")
        check(s["reachable"] is True and s["mode"] == "rw" and s["uri"] == uri,
              "%s reachable" % name)
        check(isinstance(s["bytes_used"], int) and isinstance(s["bytes_free"], int) and
              s["bytes_free"] > 0 and s["files"] == direct["files"],
              "%s usage from its /_stats (%r vs %r)" % (name, s, direct))
    for name in ("s3", "h1", "v6"):
        s = by[name]
        check(s["reachable"] is False and s["bytes_used"] is None and s["bytes_free"] is None
              and s["files"] is None, "%s unreachable, usage null (%r)" % (name, s))
    check(by["s4"]["mode"] == "spare", "s4 spare")

    # The operator's forced mode lowers the effective one.
    sql("UPDATE clusters SET forced_mode = 'ro' WHERE name = 'c1'")
    st = json.loads(ctl("status", "--json")[1])
    check(st["clusters"][0]["mode"] == "ro" and st["clusters"][0]["forced_mode"] == "ro",
          "forced ro shows as mode ro, forced_mode ro")
    sql("UPDATE clusters SET forced_mode = NULL WHERE name = 'c1'")
    sql("UPDATE storages SET mode = 'down' WHERE name = 's2'")
    st = json.loads(ctl("status", "--json")[1])
    check(st["clusters"][0]["mode"] == "ro", "one member down: c1 effective ro")
    sql("UPDATE storages SET mode = 'rw' WHERE name = 's2'")

    rc, out, err = ctl("status")
    lines = out.splitlines()
    check(rc == 0 and lines[0].split() == ["CLUSTER", "MODE", "FORCED", "STORAGES", "OBJECTS",
                                          "BYTES"], "human cluster table header")
    c1line = next((l for l in lines if l.startswith("c1 ")), "")
    check(c1line.split()[:5] == ["c1", "rw", "-", "4", "1"], "human c1 row (%r)" % c1line)
    s3line = next((l for l in lines if l.startswith("s3 ")), "")
    check("no (refused)" in s3line, "human s3 row says why (%r)" % s3line)
    h1line = next((l for l in lines if l.startswith("h1 ")), "")
    check("no (timeout)" in h1line, "human h1 row says timeout (%r)" % h1line)
    s1line = next((l for l in lines if l.startswith("s1 ")), "")
    check(" yes " in s1line, "human s1 reachable (%r)" % s1line)
    check("jobs: 2 pending, 1 running, 3 failed" in out, "human jobs line")
    check(all(not l.endswith(" ") for l in lines), "no trailing spaces")
    header = next(l for l in lines if l.startswith("STORAGE "))
    col = header.index("REACHABLE")
    check(all(l[col:].startswith(("yes", "no")) for l in lines
              if l.split() and l.split()[0] in by), "storage table columns aligned")


def main():
    hang = socket.socket()  # accepts connections (backlog) but never answers
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    hang_uri = "http://127.0.0.1:%d" % hang.getsockname()[1]
    try:
        with procs.Procs(prefix="stf-ctl-") as p:
            test_cli_basics()
            test_migrate()
            test_cluster_add()
            uri1 = start_storaged(p, "storaged1")
            uri2 = start_storaged(p, "storaged2")
            dead_uri = "http://127.0.0.1:%d" % free_port()
            test_storage_add(uri1, uri2, dead_uri, hang_uri)
            test_status(uri1, uri2)
            if failures:
                p.dump_logs(sys.stdout)
    finally:
        hang.close()
    if failures:
        print("%d check(s) failed:\n  %s" % (len(failures), "\n  ".join(failures)))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
