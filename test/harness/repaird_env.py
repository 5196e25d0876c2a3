"""test/harness/repaird_env.py — a throw-away STF system for repaird's integration tests.

Runs inside with-services.sh (real PostgreSQL and Redis): applies the migrations with the real
`clusterctl migrate`, starts real storaged and repaird processes on free loopback ports, and
offers SQL (psql), Redis (redis-cli) and HTTP helpers. Every process it starts is stopped
(TERM, then KILL) by close(), also on failure; on failure the logs are printed.
"""
import hashlib
import http.client as httplib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

BUILD = os.environ.get("STF_BUILD", "")
SRC = os.environ.get("STF_SRC", "")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def md5hex(data):
    return hashlib.md5(data).hexdigest()


def wait_for(what, pred, timeout=20.0, interval=0.05):
    """Polls pred() until it returns a true value (returned) or timeout passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


def http(method, url, body=None, headers=None, timeout=5.0):
    """One request; returns (status, headers dict (lower-case names), body bytes)."""
    u = urllib.parse.urlsplit(url)
    conn = httplib.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, u.path or "/", body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


class Proc:
    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.popen = None
        self.bad_exits = []  # exit codes of TERM stops other than 0

    def start(self):
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=self.env)
        log.close()
        return self

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """TERM (or sig), then KILL after timeout; returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        rc = self.popen.returncode
        self.popen = None
        if sig == signal.SIGTERM and rc != 0:
            self.bad_exits.append(rc)
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


class Storage:
    def __init__(self, env, name, cluster_id):
        self.env = env
        self.name = name
        self.port = free_port()
        self.uri = "http://127.0.0.1:%d" % self.port
        self.root = os.path.join(env.tmp, "disk-" + name)
        self.proc = Proc("storaged-" + name,
                         [env.bin("storaged/storaged"), "-c", env.conf, "--init", "--root",
                          self.root, "--listen", "127.0.0.1:%d" % self.port, "--log-level",
                          "info"],
                         os.path.join(env.tmp, "storaged-%s.log" % name))
        self.id = int(env.sql_one(
            "INSERT INTO storages (name, cluster_id, uri) VALUES ('%s', %d, '%s') RETURNING id"
            % (name, cluster_id, self.uri)))
        self.cluster_id = cluster_id

    def start(self):
        self.proc.start()
        wait_for("%s /_health" % self.name, self.healthy, timeout=15)
        return self

    def stop(self):
        self.proc.stop()

    def healthy(self):
        try:
            return http("GET", self.uri + "/_health", timeout=1)[0] == 200
        except OSError:
            return False

    def url(self, name):
        return "%s/%s" % (self.uri, name)

    def put(self, name, data):
        st, h, _ = http("PUT", self.url(name), body=data,
                        headers={"Content-Length": str(len(data))})
        assert st == 201, "PUT %s on %s: %d" % (name, self.name, st)
        return h.get("etag", "")

    def get(self, name):
        """(status, body) of a GET of name."""
        st, _, body = http("GET", self.url(name), timeout=30)
        return st, body

    def has(self, name):
        return http("HEAD", self.url(name))[0] == 200

    def mode(self):
        return self.env.sql_one("SELECT mode FROM storages WHERE id = %d" % self.id)


class Env:
    """One test's system: a config, a cluster or two, storages, repaird processes."""

    def __init__(self, title, repaird_conf=None):
        for var in ("STF_DB_URL", "STF_REDIS_URL", "SVC_TMPDIR", "SVC_PGBIN", "REDIS_PORT"):
            if not os.environ.get(var):
                sys.exit("%s: run me through test/harness/with-services.sh (%s unset)"
                         % (title, var))
        self.title = title
        self.tmp = tempfile.mkdtemp(prefix="rep-", dir=os.environ["SVC_TMPDIR"])
        self.procs = []
        self.storages = []
        self.repairds = []
        self.redis_port = int(os.environ["REDIS_PORT"])
        self.conf = os.path.join(self.tmp, "stf.conf")
        rep = {"workers": "2", "health_interval": "200ms", "down_after": "3",
               "max_bytes_per_sec": "0"}
        rep.update(repaird_conf or {})
        with open(self.conf, "w") as f:
            f.write("[database]\nurl = %s\n\n[redis]\nurl = %s\n\n[repaird]\n"
                    % (os.environ["STF_DB_URL"], os.environ["STF_REDIS_URL"]))
            for k, v in rep.items():
                f.write("%s = %s\n" % (k, v))
        self.run([self.bin("clusterctl/clusterctl"), "-c", self.conf, "migrate"])
        self.reset_db()

    # --- plumbing ---------------------------------------------------------------------------
    def bin(self, rel):
        return os.path.join(BUILD, rel)

    def run(self, argv, check=True, input=None):
        p = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (argv, p.returncode, p.stdout,
                                                           p.stderr))
        return p

    def sql(self, query):
        """Rows of query as lists of strings (psql -At, tab-separated)."""
        p = self.run([os.path.join(os.environ["SVC_PGBIN"], "psql"), "-X", "-At", "-q",
                      "-v", "ON_ERROR_STOP=1", "-F", "\t", "-c", query])
        return [line.split("\t") for line in p.stdout.splitlines() if line != ""]

    def sql_one(self, query):
        rows = self.sql(query)
        return rows[0][0] if rows else None

    def reset_db(self):
        self.sql("TRUNCATE jobs, mode_history, objects, buckets, storages, clusters "
                 "RESTART IDENTITY CASCADE")
        self.redis("DEL", "stf:jobs")

    def redis(self, *args, check=True):
        p = self.run(["redis-cli", "-p", str(self.redis_port)] + list(args), check=check)
        return p.stdout.strip()

    def redis_restart(self):
        """SHUTDOWN NOSAVE (every stream entry is lost), then the same Redis again."""
        d = os.path.join(os.environ["SVC_TMPDIR"], "redis")
        self.redis("shutdown", "nosave", check=False)
        wait_for("redis to stop", lambda: not os.path.exists(os.path.join(d, "redis.pid")))
        self.redis_start()

    def redis_stop(self):
        d = os.path.join(os.environ["SVC_TMPDIR"], "redis")
        self.redis("shutdown", "nosave", check=False)
        wait_for("redis to stop", lambda: not os.path.exists(os.path.join(d, "redis.pid")))

    def redis_start(self):
        d = os.path.join(os.environ["SVC_TMPDIR"], "redis")
        self.run(["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
                  "--unixsocket", os.path.join(d, "redis.sock"), "--unixsocketperm", "700",
                  "--save", "", "--appendonly", "no", "--dir", d, "--daemonize", "yes",
                  "--pidfile", os.path.join(d, "redis.pid"), "--logfile",
                  os.path.join(d, "redis.log")])
        wait_for("redis to answer", lambda: self.redis("ping", check=False) == "PONG")

    # --- topology ---------------------------------------------------------------------------
    def add_cluster(self, name, n_storages=3, start=True):
        cid = int(self.sql_one("INSERT INTO clusters (name) VALUES ('%s') RETURNING id" % name))
        members = []
        for i in range(n_storages):
            s = Storage(self, "%s-s%d" % (name, i + 1), cid)
            self.storages.append(s)
            members.append(s)
        if start:
            for s in members:
                s.start()
        return cid, members

    def add_object(self, cluster_id, data, storages, bucket="b1", name=None):
        """An object row whose copies are PUT on storages; returns (object id, internal name)."""
        bid = self.sql_one("SELECT id FROM buckets WHERE name = '%s' AND deleted_at IS NULL"
                           % bucket)
        if bid is None:
            bid = self.sql_one("INSERT INTO buckets (name) VALUES ('%s') RETURNING id" % bucket)
        internal = os.urandom(16).hex()
        for s in storages:
            s.put(internal, data)
        oid = int(self.sql_one(
            "INSERT INTO objects (bucket_id, name, internal_name, cluster_id, size, etag) "
            "VALUES (%s, '%s', '%s', %d, %d, '%s') RETURNING id"
            % (bid, name or internal, internal, cluster_id, len(data), md5hex(data))))
        return oid, internal

    # --- jobs -------------------------------------------------------------------------------
    def add_job(self, kind, payload, announce=True):
        jid = int(self.sql_one("INSERT INTO jobs (kind, payload) VALUES ('%s', '%s') RETURNING id"
                               % (kind, json.dumps(payload))))
        if announce:
            self.redis("XADD", "stf:jobs", "*", "id", str(jid), check=False)
        return jid

    def add_jobs(self, kind, payloads):
        """Many jobs in one INSERT, announced in one redis-cli pipe; returns their ids."""
        values = ",".join("('%s', '%s')" % (kind, json.dumps(p)) for p in payloads)
        ids = [int(r[0]) for r in
               self.sql("INSERT INTO jobs (kind, payload) VALUES %s RETURNING id" % values)]
        self.run(["redis-cli", "-p", str(self.redis_port)],
                 input="".join("XADD stf:jobs * id %d\n" % i for i in ids))
        return ids

    def job(self, jid):
        rows = self.sql("SELECT state, attempts, COALESCE(last_error, ''), payload::text, "
                        "COALESCE(locked_by, '') FROM jobs WHERE id = %d" % jid)
        if not rows:
            return None
        st, att, err, payload, by = rows[0]
        return {"state": st, "attempts": int(att), "last_error": err,
                "payload": json.loads(payload), "locked_by": by}

    def wait_job(self, jid, state="done", timeout=20.0):
        return wait_for("job %d to be %s" % (jid, state),
                        lambda: (self.job(jid) or {}).get("state") == state and self.job(jid),
                        timeout=timeout)

    def job_states(self):
        return dict((k, int(v)) for k, v in
                    self.sql("SELECT state, count(*) FROM jobs GROUP BY state"))

    # --- repaird ----------------------------------------------------------------------------
    def repaird(self, name="repaird", extra_env=None, wait_ready=True):
        env = dict(os.environ)
        env.update({"STF_REPAIRD_RETRY_BASE": "100ms", "STF_REPAIRD_RETRY_MAX": "1s",
                    "STF_REPAIRD_SWEEP_INTERVAL": "200ms", "STF_REPAIRD_STALE": "2s"})
        env.update(extra_env or {})
        p = Proc(name, [self.bin("repaird/repaird"), "-c", self.conf, "--log-level", "debug"],
                 os.path.join(self.tmp, "%s-%d.log" % (name, len(self.repairds))), env=env)
        p.start()
        self.repairds.append(p)
        if wait_ready:
            workers = int(re.search(r"workers = (\d+)", open(self.conf).read()).group(1))
            wait_for("%s workers to be ready" % name,
                     lambda: (p.log().count("event=worker_ready") >= workers and
                              "event=sweeper_ready" in p.log()) or not p.running(),
                     timeout=20)
            assert p.running(), "%s exited at start:\n%s" % (name, p.log())
        return p

    # --- teardown ---------------------------------------------------------------------------
    def close(self, failed):
        """Stops everything; returns a list of problems found on the way: a repaird that did
        not exit 0 on SIGTERM, or a sanitizer report in its log."""
        problems = []
        for p in self.repairds:
            p.stop()
            if p.bad_exits:
                problems.append("%s exited %r on SIGTERM" % (p.name, p.bad_exits))
            if re.search(r"Sanitizer|runtime error:", p.log()):
                problems.append("%s: sanitizer report in its log" % p.name)
        for s in self.storages:
            s.stop()
        failed = failed or problems
        if failed:
            for p in self.repairds + [s.proc for s in self.storages]:
                print("----- log of %s -----" % p.name, file=sys.stderr)
                print(p.log()[-20000:], file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems


def events(log, event):
    """key=value dicts of the log lines with event=<event>."""
    out = []
    for line in log.splitlines():
        if " event=%s " % event in line + " ":
            kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
            kv["_ts"] = line.split(" ", 1)[0]
            out.append(kv)
    return out


def main(title, tests, repaird_conf=None):
    """Runs each test(env) in a fresh Env; prints one line per test; exits 1 on any failure.
    A test function may carry its own [repaird] settings in a repaird_conf attribute."""
    failed = 0
    for t in tests:
        env = Env(title, getattr(t, "repaird_conf", repaird_conf))
        ok = False
        t0 = time.monotonic()
        try:
            t(env)
            ok = True
        except Exception:
            import traceback
            traceback.print_exc()
        finally:
            problems = env.close(not ok)
            if problems:
                print("\n".join(problems), file=sys.stderr)
                ok = False
        print("%s %s - %s (%.1fs)" % ("ok" if ok else "FAILED", title, t.__name__,
                                       time.monotonic() - t0), flush=True)
        failed += not ok
    sys.exit(1 if failed else 0)
