"""test/harness/repaird_env.py — a throw-away STF system for repaird's integration tests.

Runs inside with-services.sh (real PostgreSQL and Redis): applies the migrations with the real
`clusterctl migrate`, starts real storaged and repaird processes on loopback through
procs.Procs (so every one is stopped, TERM then KILL, also on failure, and their logs are
printed on failure), and offers SQL (psql), Redis (redis-cli) and job helpers.

    def test_x(env):
        cid, ss = env.add_cluster("c1")
        rep = env.repaird()
        j = env.add_job("delete_files", {"cluster_id": cid, "internal_name": name})
        env.wait_job(j)

    if __name__ == "__main__":
        main("repaird_x", [test_x], repaird_conf={"down_after": "0"})
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procs  # noqa: E402
from procs import free_port  # noqa: E402,F401  (re-exported for the tests)

# Tuning for tests (repaird reads these from its environment): short backoffs and sweeps.
REPAIRD_TEST_ENV = {"STF_REPAIRD_RETRY_BASE": "100ms", "STF_REPAIRD_RETRY_MAX": "1s",
                    "STF_REPAIRD_SWEEP_INTERVAL": "200ms", "STF_REPAIRD_STALE": "2s"}


def md5hex(data):
    return hashlib.md5(data).hexdigest()


def wait_for(what, pred, timeout=20.0):
    """procs.poll with the description first (reads better in the tests)."""
    return procs.poll(pred, timeout, 0.05, what)


def http(method, url, body=None, headers=None, timeout=10.0):
    """One request to http://HOST:PORT/path; returns (status, headers, body)."""
    m = re.match(r"http://([^:/]+):(\d+)(/.*)?$", url)
    return procs.http_request(m.group(1), int(m.group(2)), method, m.group(3) or "/",
                              body=body, headers=headers, timeout=timeout)


def events(log, event):
    """key=value dicts (plus _ts) of the log lines with event=<event>."""
    out = []
    for line in log.splitlines():
        if " event=%s " % event in line + " ":
            kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
            kv["_ts"] = line.split(" ", 1)[0]
            out.append(kv)
    return out


class Storage:
    """A real storaged registered as a storage row of a cluster."""

    def __init__(self, env, name, cluster_id):
        self.env = env
        self.name = name
        self.cluster_id = cluster_id
        self.root = env.p.path("disk-" + name)
        self.port = 0
        self.daemon = None
        self.start()
        self.uri = "http://127.0.0.1:%d" % self.port
        self.id = int(env.sql_one(
            "INSERT INTO storages (name, cluster_id, uri) VALUES ('%s', %d, '%s') RETURNING id"
            % (name, cluster_id, self.uri)))

    def start(self):
        """Starts storaged (again on the same port after a stop)."""
        self.daemon = self.env.p.spawn(
            "storaged-" + self.name,
            [procs.build_path("storaged", "storaged"), "-c", self.env.conf, "--init", "--root",
             self.root, "--listen", "127.0.0.1:%d" % self.port, "--log-level", "info"])
        if self.port:  # a restart: the log still holds the old "listening" line
            self.daemon.wait_http("127.0.0.1", self.port, "/_health")
        else:
            _, self.port = self.daemon.wait_listening()
        return self

    def stop(self):
        self.daemon.stop()

    def url(self, name):
        return "%s/%s" % (self.uri, name)

    def put(self, name, data):
        st, h, _ = http("PUT", self.url(name), body=data)
        assert st == 201, "PUT %s on %s: %d" % (name, self.name, st)
        return h.get("etag", "")

    def get(self, name):
        """(status, body) of a GET of name."""
        st, _, body = http("GET", self.url(name), timeout=30)
        return st, body

    def has(self, name):
        return http("HEAD", self.url(name))[0] == 200

    def on_disk(self, name):
        """True if a file named name is under the root (works while storaged is stopped)."""
        return any(name in files for _, _, files in os.walk(self.root))

    def mode(self):
        return self.env.sql_one("SELECT mode FROM storages WHERE id = %d" % self.id)


class Env:
    """One test's system: a config, clusters of storages, repaird processes."""

    def __init__(self, title, repaird_conf=None):
        for var in ("STF_DB_URL", "STF_REDIS_URL", "SVC_TMPDIR", "SVC_PGBIN", "REDIS_PORT"):
            if not os.environ.get(var):
                sys.exit("%s: run me through test/harness/with-services.sh (%s unset)"
                         % (title, var))
        self.title = title
        self.p = procs.Procs(prefix="stf-repaird-")
        self.storages = []
        self.repairds = []
        self.bad_exits = []  # (name, exit code) of repaird processes stopped with SIGTERM
        self.redis_port = int(os.environ["REDIS_PORT"])
        self.conf = self.p.path("stf.conf")
        rep = {"workers": "2", "health_interval": "200ms", "down_after": "3",
               "max_bytes_per_sec": "0"}
        rep.update(repaird_conf or {})
        self.workers = int(rep["workers"])
        with open(self.conf, "w") as f:
            f.write("[database]\nurl = %s\n\n[redis]\nurl = %s\n\n[repaird]\n"
                    % (os.environ["STF_DB_URL"], os.environ["STF_REDIS_URL"]))
            for k, v in rep.items():
                f.write("%s = %s\n" % (k, v))
        self.run([procs.build_path("clusterctl", "clusterctl"), "-c", self.conf, "migrate"])
        self.sql("TRUNCATE jobs, mode_history, objects, buckets, storages, clusters "
                 "RESTART IDENTITY CASCADE")
        self.redis("DEL", "stf:jobs")

    # --- plumbing ---------------------------------------------------------------------------
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

    def redis(self, *args, check=True):
        p = self.run(["redis-cli", "-p", str(self.redis_port)] + list(args), check=check)
        return p.stdout.strip()

    def _redis_dir(self):
        return os.path.join(os.environ["SVC_TMPDIR"], "redis")

    def redis_stop(self):
        """SHUTDOWN NOSAVE: every stream entry is lost."""
        self.redis("shutdown", "nosave", check=False)
        wait_for("redis to stop",
                 lambda: not os.path.exists(os.path.join(self._redis_dir(), "redis.pid")))

    def redis_start(self):
        """The same Redis (port, socket, pid file) as with-services.sh started."""
        d = self._redis_dir()
        self.run(["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
                  "--unixsocket", os.path.join(d, "redis.sock"), "--unixsocketperm", "700",
                  "--save", "", "--appendonly", "no", "--dir", d, "--daemonize", "yes",
                  "--pidfile", os.path.join(d, "redis.pid"), "--logfile",
                  os.path.join(d, "redis.log")])
        wait_for("redis to answer", lambda: self.redis("ping", check=False) == "PONG")

    def redis_restart(self):
        self.redis_stop()
        self.redis_start()

    # --- topology ---------------------------------------------------------------------------
    def add_cluster(self, name, n_storages=3):
        cid = int(self.sql_one("INSERT INTO clusters (name) VALUES ('%s') RETURNING id" % name))
        members = [Storage(self, "%s-s%d" % (name, i + 1), cid) for i in range(n_storages)]
        self.storages += members
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
        """A job row, announced on the stream as jobs_enqueue does (unless announce=False)."""
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
        def check():
            j = self.job(jid)
            return j if j and j["state"] == state else None
        return wait_for("job %d to be %s" % (jid, state), check, timeout)

    def job_states(self):
        return dict((k, int(v)) for k, v in
                    self.sql("SELECT state, count(*) FROM jobs GROUP BY state"))

    # --- repaird ----------------------------------------------------------------------------
    def repaird(self, name="repaird", extra_env=None):
        """Starts a repaird (debug log) and waits until its workers and sweeper run."""
        env = dict(os.environ)
        env.update(REPAIRD_TEST_ENV)
        env.update(extra_env or {})
        d = self.p.spawn("%s-%d" % (name, len(self.repairds)),
                         [procs.build_path("repaird", "repaird"), "-c", self.conf,
                          "--log-level", "debug"], env=env)
        self.repairds.append(d)

        def ready():
            if not d.alive():
                raise AssertionError("%s exited at start (rc=%s)" % (d.name, d.proc.returncode))
            log = d.log_text()
            return log.count("event=worker_ready") >= self.workers and "event=sweeper_ready" in log
        wait_for("%s to be ready" % d.name, ready)
        return d

    def stop(self, d):
        """SIGTERM (then KILL); a repaird must exit 0. Returns the exit code."""
        rc = d.stop()
        if rc != 0:
            self.bad_exits.append((d.name, rc))
        return rc

    # --- teardown ---------------------------------------------------------------------------
    def close(self, failed):
        """Stops everything; returns the problems found on the way: a repaird that did not exit
        0 on SIGTERM, or a sanitizer report in a repaird log. Prints the logs on failure."""
        for d in self.repairds:
            if d.alive():
                self.stop(d)
        problems = ["%s exited %s on SIGTERM" % x for x in self.bad_exits]
        problems += ["%s: sanitizer report in its log" % d.name for d in self.repairds
                     if re.search(r"Sanitizer|runtime error:", d.log_text())]
        self.p.stop_all()
        if failed or problems:
            self.p.dump_logs()
        shutil.rmtree(self.p.dir, ignore_errors=True)
        return problems


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
