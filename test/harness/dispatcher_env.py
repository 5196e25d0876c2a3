"""test/harness/dispatcher_env.py — a complete throw-away STF system for the dispatcher's
integration tests: the migrations applied with the real `clusterctl migrate`, clusters of real
storaged processes registered with `clusterctl cluster add` / `storage add`, one or more real
dispatchers, and on request the real repaird. Runs inside with-services.sh (PostgreSQL and
Redis); every process goes through procs.Procs, so all are stopped (TERM, then KILL) at the end
and their logs are printed on failure.

    with procs.Procs() as p:
        s = dispatcher_env.System(p, clusters=2)
        st, h, body = s.req("PUT", "/b1")
"""
import hashlib
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procs  # noqa: E402


def md5hex(data):
    return hashlib.md5(data).hexdigest()


class Storage:
    def __init__(self, system, name, cluster, spare=False):
        self.system = system
        self.name = name
        self.cluster = cluster
        self.spare = spare
        self.root = system.p.path("disk-" + name)
        self.daemon = None
        self.port = None
        self.uri = None

    def start(self, port=None):
        """Starts storaged (again on the same port when restarted)."""
        port = port or self.port or 0
        self.daemon = self.system.p.spawn(
            "storaged-" + self.name,
            [procs.build_path("storaged", "storaged"), "-c", self.system.conf, "--init",
             "--root", self.root, "--listen", "127.0.0.1:%d" % port,
             "--log-level", os.environ.get("STORAGED_LOG", "info")])
        _, self.port = self.daemon.wait_listening()
        self.uri = "http://127.0.0.1:%d" % self.port
        return self

    def kill(self):
        """SIGKILL: a dead storage (connections refused)."""
        self.daemon.kill9()

    def files(self):
        """{internal name: bytes} of every finished file under the root (not temp files)."""
        out = {}
        for d, dirs, names in os.walk(self.root):
            dirs[:] = [x for x in dirs if not x.startswith(".")]
            for n in names:
                if n.startswith("."):
                    continue
                with open(os.path.join(d, n), "rb") as f:
                    out[n] = f.read()
        return out

    def has(self, internal):
        return internal in self.files()


class System:
    """clusters × per_cluster storaged (+ spares per cluster), registered with clusterctl; a
    dispatcher unless dispatcher=False. conf: extra [dispatcher] keys."""

    def __init__(self, p, clusters=2, per_cluster=3, spares=0, dispatcher=True, conf=None):
        for var in ("STF_DB_URL", "STF_REDIS_URL", "SVC_PGBIN", "REDIS_PORT", "SVC_TMPDIR"):
            if not os.environ.get(var):
                sys.exit("run me through test/harness/with-services.sh (%s unset)" % var)
        self.p = p
        self.redis_port = int(os.environ["REDIS_PORT"])
        self.dconf = {"listen": "127.0.0.1:0", "threads": "4", "max_object_size": "64M",
                      "reproxy": "off"}
        self.dconf.update(conf or {})
        self.conf = p.path("stf.conf")
        self.write_conf()
        self.ctl("migrate")
        self.sql("TRUNCATE jobs, mode_history, objects, buckets, storages, clusters "
                 "RESTART IDENTITY CASCADE")
        self.redis("FLUSHALL")
        self.clusters = {}
        self.storages = []
        for c in range(clusters):
            self.add_cluster("c%d" % (c + 1), per_cluster, spares)
        self.dispatchers = []
        self.host = self.port = None
        if dispatcher:
            self.start_dispatcher()

    def add_cluster(self, cname, per_cluster=3, spares=0, fakes=()):
        """A cluster of real storaged (and spares), plus FakeStorage members (rw)."""
        self.ctl("cluster", "add", cname)
        members = []
        for i in range(per_cluster + spares):
            spare = i >= per_cluster
            st = Storage(self, "%s-s%d" % (cname, i + 1), cname, spare).start()
            args = ["storage", "add", st.name, "--cluster", cname, "--uri", st.uri]
            if spare:
                args += ["--mode", "spare"]
            self.ctl(*args)
            members.append(st)
            self.storages.append(st)
        for i, fake in enumerate(fakes):
            self.ctl("storage", "add", "%s-fake%d" % (cname, i + 1), "--cluster", cname,
                     "--uri", fake.uri)
        self.clusters[cname] = members
        return members

    def cluster_of(self, storage_name):
        return storage_name.rsplit("-", 1)[0]

    # --- plumbing ---------------------------------------------------------------------------
    def write_conf(self):
        with open(self.conf, "w") as f:
            f.write("[database]\nurl = %s\n\n[redis]\nurl = %s\n\n[dispatcher]\n"
                    % (os.environ["STF_DB_URL"], os.environ["STF_REDIS_URL"]))
            for k, v in self.dconf.items():
                f.write("%s = %s\n" % (k, v))
            f.write("\n[repaird]\nworkers = 2\nhealth_interval = 200ms\ndown_after = 0\n"
                    "max_bytes_per_sec = 0\n")

    def run(self, argv, check=True, input=None, timeout=60):
        r = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (argv, r.returncode, r.stdout,
                                                           r.stderr))
        return r

    def ctl(self, *args, check=True):
        return self.run([procs.build_path("clusterctl", "clusterctl"), "-c", self.conf] +
                        list(args), check=check)

    def sql(self, query):
        """Rows as lists of strings."""
        r = self.run([os.path.join(os.environ["SVC_PGBIN"], "psql"), "-X", "-At", "-q",
                      "-v", "ON_ERROR_STOP=1", "-F", "\t", "-c", query])
        return [line.split("\t") for line in r.stdout.splitlines() if line != ""]

    def sql_one(self, query):
        rows = self.sql(query)
        return rows[0][0] if rows else None

    def redis(self, *args, check=True):
        return self.run(["redis-cli", "-p", str(self.redis_port)] + list(args),
                        check=check).stdout.strip()

    def redis_dir(self):
        return os.path.join(os.environ["SVC_TMPDIR"], "redis")

    def redis_stop(self):
        self.redis("SHUTDOWN", "NOSAVE", check=False)
        procs.poll(lambda: not os.path.exists(os.path.join(self.redis_dir(), "redis.pid")),
                   what="redis to stop")

    def redis_start(self):
        d = self.redis_dir()
        self.run(["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
                  "--unixsocket", os.path.join(d, "redis.sock"), "--unixsocketperm", "700",
                  "--save", "", "--appendonly", "no", "--dir", d, "--daemonize", "yes",
                  "--pidfile", os.path.join(d, "redis.pid"), "--logfile",
                  os.path.join(d, "redis.log")])
        procs.poll(lambda: self.redis("PING", check=False) == "PONG", what="redis to answer")

    # --- daemons ----------------------------------------------------------------------------
    def start_dispatcher(self, name=None, listen=None, env=None):
        """Starts a dispatcher (listen: "HOST:PORT", default from the config); the first one
        becomes the target of req()."""
        name = name or "dispatcher%d" % (len(self.dispatchers) + 1)
        argv = [procs.build_path("dispatcher", "dispatcher"), "-c", self.conf,
                "--log-level", "info"]
        if listen:
            argv += ["--listen", listen]
        e = dict(os.environ)
        e.update(env or {})
        d = self.p.spawn(name, argv, env=e)
        host, port = d.wait_listening()
        d.host, d.port = host, port
        self.dispatchers.append(d)
        if self.port is None:
            self.host, self.port = host, port
        procs.poll(lambda: self.topology_loaded(d), what="%s to load the topology" % name)
        return d

    def topology_loaded(self, d):
        return "event=topology_loaded" in d.log_text()

    def start_repaird(self, name="repaird"):
        env = dict(os.environ)
        env.update({"STF_REPAIRD_RETRY_BASE": "100ms", "STF_REPAIRD_RETRY_MAX": "1s",
                    "STF_REPAIRD_SWEEP_INTERVAL": "200ms", "STF_REPAIRD_STALE": "2s"})
        d = self.p.spawn(name, [procs.build_path("repaird", "repaird"), "-c", self.conf,
                                "--log-level", "info"], env=env)
        return d

    # --- client -----------------------------------------------------------------------------
    def req(self, method, path, body=None, headers=None, port=None, timeout=30.0):
        """(status, headers with lower-case names, body) of one request to the dispatcher."""
        return procs.http_request(self.host, port or self.port, method, path, body=body,
                                  headers=headers, timeout=timeout)

    def put(self, path, data, headers=None):
        h = {"Content-Length": str(len(data))}
        h.update(headers or {})
        return self.req("PUT", path, body=data, headers=h)

    # --- state ------------------------------------------------------------------------------
    def object_row(self, bucket, name):
        """(internal name, cluster name, size, etag) of a live object, or None."""
        rows = self.sql("SELECT o.internal_name, c.name, o.size, o.etag FROM objects o "
                        "JOIN buckets b ON b.id = o.bucket_id JOIN clusters c ON "
                        "c.id = o.cluster_id WHERE b.name = '%s' AND b.deleted_at IS NULL "
                        "AND o.name = '%s'" % (bucket, name.replace("'", "''")))
        if not rows:
            return None
        return rows[0][0], rows[0][1], int(rows[0][2]), rows[0][3]

    def all_files(self):
        """{storage name: {internal name: bytes}}."""
        return {s.name: s.files() for s in self.storages}

    def jobs(self, kind=None):
        q = "SELECT id, kind, state, payload::text FROM jobs"
        if kind:
            q += " WHERE kind = '%s'" % kind
        return self.sql(q + " ORDER BY id")

    def metrics(self, port=None):
        st, _, body = self.req("GET", "/_metrics", port=port)
        assert st == 200, st
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out


def wait_settled(system, timeout=30.0):
    """Waits until no job is pending or running (repaird must be running)."""
    procs.poll(lambda: system.sql_one("SELECT count(*) FROM jobs WHERE state IN "
                                      "('pending', 'running')") == "0",
               timeout=timeout, what="background jobs to settle")


def wait_until(pred, timeout=10.0, what="condition"):
    return procs.poll(pred, timeout=timeout, what=what)


def now():
    return time.monotonic()


class FakeStorage:
    """A storaged stand-in on a free port that misbehaves on purpose, to test what the
    dispatcher does with failing copies. put: "ok" (201 with the body's MD5), "500", or
    "bad_etag"; delete: "ok" (204) or "500". Bodies with Content-Length or chunked."""

    def __init__(self, put="ok", delete="ok"):
        import http.server
        import socketserver
        import threading

        fake = self
        self.put_mode = put
        self.delete_mode = delete
        self.files = {}
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        data += self.rfile.read(size)
                        self.rfile.readline()
                        if size == 0:
                            return data
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def reply(self, status, headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_PUT(self):
                data = self.body()
                fake.requests.append(("PUT", self.path))
                if fake.put_mode == "500":
                    return self.reply(500)
                etag = md5hex(data) if fake.put_mode == "ok" else "0" * 32
                fake.files[self.path.lstrip("/")] = data
                self.reply(201, {"ETag": '"%s"' % etag})

            def do_DELETE(self):
                fake.requests.append(("DELETE", self.path))
                if fake.delete_mode == "500":
                    return self.reply(500)
                existed = fake.files.pop(self.path.lstrip("/"), None) is not None
                self.reply(204 if existed else 404)

            def do_GET(self):
                fake.requests.append(("GET", self.path))
                self.reply(200 if self.path == "/_health" else 404)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.uri = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def murmur3_x64_128_h1(data, seed=0):
    """The first 64-bit half of MurmurHash3_x64_128 (Appleby's reference), as common/hash.c
    uses it for rendezvous scores."""
    mask = (1 << 64) - 1
    c1, c2 = 0x87c37b91114253d5, 0x4cf5ad432745937f

    def rotl(x, r):
        return ((x << r) | (x >> (64 - r))) & mask

    def fmix(k):
        k ^= k >> 33
        k = (k * 0xff51afd7ed558ccd) & mask
        k ^= k >> 33
        k = (k * 0xc4ceb9fe1a85ec53) & mask
        k ^= k >> 33
        return k

    n = len(data)
    h1 = h2 = seed
    nblocks = n // 16
    for i in range(nblocks):
        k1 = int.from_bytes(data[16 * i:16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8:16 * i + 16], "little")
        k1 = (rotl((k1 * c1) & mask, 31) * c2) & mask
        h1 ^= k1
        h1 = (rotl(h1, 27) + h2) & mask
        h1 = (h1 * 5 + 0x52dce729) & mask
        k2 = (rotl((k2 * c2) & mask, 33) * c1) & mask
        h2 ^= k2
        h2 = (rotl(h2, 31) + h1) & mask
        h2 = (h2 * 5 + 0x38495ab5) & mask
    tail = data[16 * nblocks:]
    k1 = k2 = 0
    if len(tail) > 8:
        k2 = int.from_bytes(tail[8:], "little")
        k2 = (rotl((k2 * c2) & mask, 33) * c1) & mask
        h2 ^= k2
    if len(tail) > 0:
        k1 = int.from_bytes(tail[:8], "little")
        k1 = (rotl((k1 * c1) & mask, 31) * c2) & mask
        h1 ^= k1
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & mask
    h2 = (h2 + h1) & mask
    h1 = fmix(h1)
    h2 = fmix(h2)
    h1 = (h1 + h2) & mask
    return h1


def rendezvous(key, member_id):
    """Score of key (str or bytes) with a member id, as hash_rendezvous() in common/hash.c."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    return murmur3_x64_128_h1(key + str(member_id).encode())


def write_order(system, key):
    """Cluster names in the order a write of key ("bucket/object") tries them, among the
    given clusters (all assumed effectively rw)."""
    ids = getattr(system, "_cluster_ids", None)
    if ids is None or len(ids) != len(system.clusters):
        ids = dict(system.sql("SELECT name, id FROM clusters"))
        system._cluster_ids = ids
    return sorted(ids, key=lambda n: -rendezvous(key, int(ids[n])))


def read_order(system, internal_name, cluster):
    """Storage names of a cluster in read order for an internal name."""
    rows = system.sql("SELECT s.name, s.id FROM storages s JOIN clusters c ON c.id = "
                      "s.cluster_id WHERE c.name = '%s'" % cluster)
    return [n for n, i in sorted(rows, key=lambda r: -rendezvous(internal_name, int(r[1])))]
