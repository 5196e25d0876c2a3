"""test/integration/test_chaos.py — chaos: a mixed client load (new PUTs, overwrites, GETs,
DELETEs, MOVEs) runs through two dispatchers while a fault script kill -9's and restarts random
storaged, dispatcher and repaird processes, stops PostgreSQL and Redis for a few seconds, and
marks a storage down and repairs it with `clusterctl repair --wait`. A client-side model keeps,
for every name, the set of versions it may hold (an op answered with a connection error or a
5xx may or may not have happened; an acknowledged one did). Afterwards, once everything is back
and repaird has settled: every name reads as one of its possible versions (an acknowledged PUT
is readable with its bytes unless later deleted or replaced, a deleted object is not), no read
ever returned bytes of no possible version (no half-written object), every live object has
exactly one copy with its bytes on every storage of its cluster, no other file (temp or stale)
is left on any storage, and `clusterctl verify` agrees. Prints its numbers; fails on any
violation. Seed: $STF_CHAOS_SEED (printed), load time: $STF_CHAOS_SECONDS (default 40);
$STF_CHAOS_FAULTS (comma-separated kinds, default all) narrows the faults down when hunting a
bug; $STF_CHAOS_KEEP=DIR keeps a copy of the disks and logs there."""
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402

SEED = int(os.environ.get("STF_CHAOS_SEED") or (time.time_ns() // 1000) % 1000000)
LOAD_SECONDS = float(os.environ.get("STF_CHAOS_SECONDS") or 40)
SETTLE_SECONDS = 150.0      # bound on restore + settle (ASan on 2 busy CPUs)
THREADS = 6
NAMES_PER_THREAD = 12
BUCKET = "chaos"
CLIENT_TIMEOUT = 60.0       # a request that outlives this may still happen later: "lingering"
KiB, MiB = 1024, 1024 * 1024

REFUSED, ERROR, TIMEOUT = "refused", "error", "timeout"


class Violations:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, what):
        with self.lock:
            self.items.append(what)
            sys.stderr.write("VIOLATION: %s\n" % what)


def request(port, method, path, body=None, headers=None, timeout=CLIENT_TIMEOUT):
    """(status, headers, body), or (REFUSED|ERROR|TIMEOUT, None, reason). REFUSED: the request
    never reached a dispatcher; ERROR: cut somewhere (a killed dispatcher); TIMEOUT: no answer
    in time (the dispatcher may still carry it out)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    except ConnectionRefusedError as e:
        return REFUSED, None, repr(e)
    except socket.timeout as e:
        return TIMEOUT, None, repr(e)
    except (OSError, http.client.HTTPException) as e:
        return ERROR, None, repr(e)
    finally:
        conn.close()


def uncertain(status):
    return status in (ERROR, TIMEOUT) or (isinstance(status, int) and status >= 500)


class Model:
    """Possible states of every name: a version id or None (absent). cur: what it may hold now;
    linger: versions a timed-out request may still install at any later time."""

    def __init__(self, violations):
        self.v = violations
        self.lock = threading.Lock()
        self.versions = {}  # vid -> (md5, size)
        self.origin = {}    # vid -> [name it was PUT as, the PUT's outcome]
        self.cur = {}
        self.linger = {}
        self.history = {}   # name -> the last ops on it, for the report
        self.next_vid = 1
        self.t0 = time.monotonic()

    def add_name(self, name):
        self.cur[name] = {None}
        self.linger[name] = set()
        self.history[name] = []

    def note(self, name, what, status):
        h = self.history[name]
        h.append("%.2fs %s -> %s: %s" % (time.monotonic() - self.t0, what, status,
                                          self.describe(name)))
        del h[:-12]

    def new_version(self, name, data):
        with self.lock:
            vid = self.next_vid
            self.next_vid += 1
        self.versions[vid] = (hashlib.md5(data).hexdigest(), len(data))
        self.origin[vid] = [name, "in flight"]
        return vid

    def which(self, data):
        """Where bytes that match no allowed state came from, for the report."""
        key = (hashlib.md5(data).hexdigest(), len(data))
        found = ["v%d: PUT %s -> %s" % (x, o[0], o[1]) for x, o in self.origin.items()
                 if self.versions[x] == key]
        return "; ".join(found) or "bytes of no PUT"

    def allowed(self, name):
        return self.cur[name] | self.linger[name]

    def observe(self, name, pred, what, data=None):
        """The name was seen in a state satisfying pred: keep only those states."""
        keep = {x for x in self.allowed(name) if pred(x)}
        if not keep:
            self.v.add("%s: %s at %.2fs, but the model allows only %s%s; its last ops:\n  %s" %
                       (name, what, time.monotonic() - self.t0, self.describe(name),
                        " (%s)" % self.which(data) if data is not None else "",
                        "\n  ".join(self.history[name])))
            return False
        self.cur[name] = keep
        return True

    def maybe(self, name, states, lingering):
        self.cur[name] |= set(states)
        if lingering:
            self.linger[name] |= set(states)

    def describe(self, name):
        return sorted(("absent" if x is None else "v%d(%s,%dB)" % ((x,) + self.versions[x]))
                      for x in self.allowed(name))

    def matches(self, data):
        md5, size = hashlib.md5(data).hexdigest(), len(data)
        return lambda x: x is not None and self.versions[x] == (md5, size)


def pick_size(rng):
    r = rng.random()
    if r < 0.04:
        return rng.randint(3 * MiB // 2, 5 * MiB // 2)
    if r < 0.5:
        return rng.randint(0, 8 * KiB)
    return rng.randint(8 * KiB, 300 * KiB)


class Load:
    """THREADS client threads; each owns its names (so ops on one name are sequential) and
    talks to one dispatcher (waiting while that one is down)."""

    def __init__(self, ports, model, violations):
        self.ports = ports
        self.m = model
        self.v = violations
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {"ops": 0, "acked": 0, "uncertain": 0, "refused": 0, "lingering": 0,
                       "get_ok": 0, "get_failed": 0}
        self.threads = [threading.Thread(target=self.worker, args=(t,), daemon=True)
                        for t in range(THREADS)]
        self.names = {t: ["t%d-n%02d" % (t, i) for i in range(NAMES_PER_THREAD)]
                      for t in range(THREADS)}
        for names in self.names.values():
            for n in names:
                model.add_name(n)

    def count(self, key):
        with self.lock:
            self.counts[key] += 1

    def port_of(self, t):
        return self.ports[t % len(self.ports)]

    def worker(self, t):
        rng = random.Random(SEED * 1000 + t)
        while not self.stop.is_set():
            op = rng.choices(("put", "get", "delete", "move"), (40, 35, 12, 13))[0]
            name = rng.choice(self.names[t])
            self.count("ops")
            if op == "put":
                status = self.put(t, rng, name)
            elif op == "get":
                status = self.get(t, name)
            elif op == "delete":
                status = self.delete(t, name)
            else:
                other = rng.choice([n for n in self.names[t] if n != name])
                status = self.move(t, name, other, rng.random() < 0.5)
            if status == REFUSED:
                self.count("refused")
                time.sleep(0.05)
            elif uncertain(status):
                self.count("uncertain" if op != "get" else "get_failed")
                if status == TIMEOUT:
                    self.count("lingering")
                time.sleep(0.02)  # a fast 503 (PostgreSQL away) is not a reason to spin
            elif op != "get":
                self.count("acked")

    def unexpected(self, what, name, status, body):
        self.v.add("%s %s: unexpected %s %r" % (what, name, status, (body or b"")[:200]))

    def put(self, t, rng, name):
        data = rng.randbytes(pick_size(rng))
        vid = self.m.new_version(name, data)
        st, h, body = request(self.port_of(t), "PUT", "/%s/%s" % (BUCKET, name), data,
                              {"Content-Length": str(len(data))})
        self.m.origin[vid][1] = st
        if st == 201:
            if h.get("etag", "").strip('"') != self.m.versions[vid][0]:
                self.v.add("PUT %s: ETag %s for md5 %s" % (name, h.get("etag"),
                                                          self.m.versions[vid][0]))
            self.m.cur[name] = {vid}
        elif uncertain(st):
            self.m.maybe(name, {vid}, st == TIMEOUT)
        elif st != REFUSED:
            self.unexpected("PUT", name, st, body)
        self.m.note(name, "PUT v%d" % vid, st)
        return st

    def get(self, t, name):
        st, h, body = request(self.port_of(t), "GET", "/%s/%s" % (BUCKET, name))
        if st == 200:
            self.count("get_ok")
            md5 = hashlib.md5(body).hexdigest()
            if h.get("etag", "").strip('"') != md5:
                self.v.add("GET %s: %d bytes with md5 %s under ETag %s" %
                           (name, len(body), md5, h.get("etag")))
            self.m.observe(name, self.m.matches(body),
                           "GET returned %d bytes md5 %s" % (len(body), md5), body)
        elif st == 404:
            self.count("get_ok")
            self.m.observe(name, lambda x: x is None, "GET returned 404")
        elif not uncertain(st) and st != REFUSED:
            self.unexpected("GET", name, st, body)
        self.m.note(name, "GET", st if st != 200 else "200 %dB" % len(body))
        return st

    def delete(self, t, name):
        st, _, body = request(self.port_of(t), "DELETE", "/%s/%s" % (BUCKET, name))
        if st == 204:
            self.m.observe(name, lambda x: x is not None, "DELETE answered 204")
            self.m.cur[name] = {None}
        elif st == 404:
            self.m.observe(name, lambda x: x is None, "DELETE answered 404")
        elif uncertain(st):
            self.m.maybe(name, {None}, st == TIMEOUT)
        elif st != REFUSED:
            self.unexpected("DELETE", name, st, body)
        self.m.note(name, "DELETE", st)
        return st

    def move(self, t, src, dst, overwrite):
        hdrs = {"X-STF-Move-Destination": "/%s/%s" % (BUCKET, dst)}
        if overwrite:
            hdrs["X-STF-Overwrite"] = "T"
        st, _, body = request(self.port_of(t), "MOVE", "/%s/%s" % (BUCKET, src), None, hdrs)
        m = self.m
        if st == 201:
            if not overwrite:
                m.observe(dst, lambda x: x is None, "MOVE onto it without overwrite answered 201")
            if m.observe(src, lambda x: x is not None, "MOVE from it answered 201"):
                m.cur[dst] = set(m.cur[src])
            m.cur[src] = {None}
        elif st == 412 and not overwrite:
            m.observe(dst, lambda x: x is not None, "MOVE onto it answered 412")
        elif st == 404:
            m.observe(src, lambda x: x is None, "MOVE from it answered 404")
        elif uncertain(st):
            moved = m.allowed(src) - {None}
            m.maybe(dst, moved, st == TIMEOUT)
            m.maybe(src, {None}, st == TIMEOUT)
        elif st != REFUSED:
            self.unexpected("MOVE", src, st, body)
        what = "MOVE %s -> %s%s" % (src, dst, " (overwrite)" if overwrite else "")
        m.note(src, what, st)
        m.note(dst, what, st)
        return st


def durable_commits():
    """with-services.sh runs PostgreSQL with synchronous_commit=off: an acknowledged commit
    can be lost by the immediate shutdowns below, as in no production setup. The database
    setting wins over the command line for every new session."""
    subprocess.run([os.path.join(os.environ["SVC_PGBIN"], "psql"), "-X", "-q", "-v",
                    "ON_ERROR_STOP=1", "-c", "ALTER DATABASE %s SET synchronous_commit = on"
                    % os.environ["PGDATABASE"]], check=True, capture_output=True, timeout=60)


class Cluster:
    """The system under test and the faults that can be injected into it."""

    def __init__(self, p):
        self.p = p
        durable_commits()
        self.s = de.System(p, clusters=2)
        self.s.start_dispatcher()
        self.repairds = [self.s.start_repaird("repaird1"), self.s.start_repaird("repaird2")]
        self.incarnation = 0
        self.lock = threading.Lock()  # one process-level fault at a time

    def next_name(self, base):
        self.incarnation += 1
        return "%s.%d" % (base, self.incarnation)

    def restart_storaged(self, st):
        st.daemon = self.p.spawn(
            self.next_name("storaged-" + st.name),
            [procs.build_path("storaged", "storaged"), "-c", self.s.conf, "--init", "--root",
             st.root, "--listen", "127.0.0.1:%d" % st.port, "--log-level", "info"])
        st.daemon.wait_http("127.0.0.1", st.port, "/_health", timeout=60)

    def restart_dispatcher(self, i):
        old = self.s.dispatchers[i]
        d = self.p.spawn(self.next_name(old.name.split(".")[0]),
                         [procs.build_path("dispatcher", "dispatcher"), "-c", self.s.conf,
                          "--log-level", "info", "--listen", "127.0.0.1:%d" % old.port])
        d.host, d.port = d.wait_listening(timeout=60)
        procs.poll(lambda: self.s.topology_loaded(d), timeout=60, what="topology")
        self.s.dispatchers[i] = d

    def restart_repaird(self, i):
        base = self.repairds[i].name.split(".")[0]
        self.repairds[i] = self.s.start_repaird(self.next_name(base))

    def ctl(self, *args, timeout=60.0):
        """clusterctl ARGS: (exit code, stdout, stderr); a timeout is exit code None."""
        argv = [procs.build_path("clusterctl", "clusterctl"), "-c", self.s.conf] + list(args)
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "", "timed out after %.0fs" % timeout
        return r.returncode, r.stdout, r.stderr

    def processes_alive(self):
        return [d.name for d in ([st.daemon for st in self.s.storages] + self.s.dispatchers +
                                 self.repairds) if not d.alive()]


class Faults:
    """A thread that injects one fault at a time (and restores it) until stopped; the storage
    repair runs in its own thread so other faults hit it while it copies."""

    KINDS = (("kill_storaged", 30), ("kill_dispatcher", 20), ("kill_repaird", 15),
             ("stop_pg", 10), ("stop_redis", 10), ("mark_down_repair", 10))

    def __init__(self, c, rng):
        only = [k for k in os.environ.get("STF_CHAOS_FAULTS", "").split(",") if k]
        unknown = set(only) - {k for k, _ in self.KINDS}
        assert not unknown, "STF_CHAOS_FAULTS: unknown kinds %s" % sorted(unknown)
        self.kinds = [(k, w) for k, w in self.KINDS if not only or k in only]
        self.c = c
        self.rng = rng
        self.stop = threading.Event()
        self.counts = {k: 0 for k, _ in self.KINDS}
        self.notes = []
        self.repair = None
        self.errors = []
        self.timeline = []  # when each fault happened (times from the load's start)
        self.target = ""
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        """Every kind once first (in a random order), then kinds drawn by weight."""
        first = [k for k, _ in self.kinds]
        self.rng.shuffle(first)
        try:
            while not self.stop.wait(self.rng.uniform(0.5, 1.5)):
                kind = first.pop(0) if first else \
                    self.rng.choices([k for k, _ in self.kinds], [w for _, w in self.kinds])[0]
                t = time.monotonic()
                if getattr(self, kind)():
                    self.counts[kind] += 1
                    self.timeline.append("%.2fs-%.2fs %s %s" % (t - self.t0, time.monotonic() -
                                                                self.t0, kind, self.target))
        except Exception as e:  # noqa: BLE001 — reported as a test failure
            self.errors.append("fault script: %r" % e)
            traceback.print_exc()

    def pause(self, lo, hi):
        time.sleep(self.rng.uniform(lo, hi))

    def kill_storaged(self):
        st = self.rng.choice(self.c.s.storages)
        self.target = st.name
        st.daemon.kill9()
        self.pause(0.3, 2.0)
        self.c.restart_storaged(st)
        return True

    def kill_dispatcher(self):
        i = self.rng.randrange(len(self.c.s.dispatchers))
        self.target = "dispatcher%d" % (i + 1)
        self.c.s.dispatchers[i].kill9()
        self.pause(0.2, 1.0)
        self.c.restart_dispatcher(i)
        return True

    def kill_repaird(self):
        i = self.rng.randrange(len(self.c.repairds))
        self.target = "repaird%d" % (i + 1)
        self.c.repairds[i].kill9()
        self.pause(0.2, 1.5)
        self.c.restart_repaird(i)
        return True

    def stop_pg(self):
        self.target = ""
        procs.pg_stop()
        self.pause(2.0, 3.0)
        procs.pg_start()
        return True

    def stop_redis(self):
        self.target = ""
        self.c.s.redis_stop()
        self.pause(2.0, 3.0)
        self.c.s.redis_start()
        return True

    def mark_down_repair(self):
        if self.repair is not None and self.repair.is_alive():
            return False
        modes = dict(self.c.s.sql("SELECT name, mode FROM storages"))
        ok = [st for st in self.c.s.storages
              if all(modes[m.name] == "rw" for m in self.c.s.clusters[st.cluster])]
        if not ok:
            return False
        st = self.rng.choice(ok)
        self.target = st.name
        rc, _, err = self.c.ctl("mark-down", st.name, "--reason", "chaos")
        if rc != 0:
            self.notes.append("mark-down %s refused: %s" % (st.name, err.strip()))
            return False
        self.repair = threading.Thread(target=self.run_repair, args=(st,), daemon=True)
        self.repair.start()
        return True

    def run_repair(self, st):
        t0 = time.monotonic()
        try:
            rc, _, err = self.c.ctl("repair", st.name, "--wait", timeout=300)
        except Exception as e:  # noqa: BLE001 — reported as a test failure
            self.errors.append("repair %s: %r" % (st.name, e))
            return
        self.notes.append("repair %s: exit %s after %.1fs%s" %
                          (st.name, rc, time.monotonic() - t0,
                           "" if rc == 0 else " (%s)" % err.strip()[-200:]))


def settle(c, deadline):
    """Every process up, every storage rw again (repairing what the chaos left down), and no
    background job pending or running for a while."""
    s = c.s
    t0 = time.monotonic()
    dead = c.processes_alive()
    assert not dead, "processes dead after the chaos: %s" % dead
    left = lambda: deadline - time.monotonic()  # noqa: E731
    for _ in range(5):
        modes = dict(s.sql("SELECT name, mode FROM storages"))
        todo = [n for n, m in modes.items() if m != "rw"]
        if not todo:
            break
        for name in todo:
            if modes[name] == "repair":
                procs.poll(lambda: s.sql_one("SELECT mode FROM storages WHERE name = '%s'"
                                             % name) != "repair",
                           timeout=max(1, left()), interval=0.2, what="%s's repair" % name)
            else:
                rc, _, err = c.ctl("repair", name, "--wait", timeout=max(1, left()))
                print("chaos: settle: repair %s: exit %s %s" % (name, rc, err.strip()[-300:]))
    modes = dict(s.sql("SELECT name, mode FROM storages"))
    assert all(m == "rw" for m in modes.values()), "storages not rw after repair: %s" % modes
    print("chaos: settle: every storage rw after %.1fs" % (time.monotonic() - t0), flush=True)
    quiet = []

    def settled():
        n = int(s.sql_one("SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')"))
        quiet.append(n == 0)
        return len(quiet) >= 3 and all(quiet[-3:])
    procs.poll(settled, timeout=max(1, left()), interval=0.5, what="background jobs to settle")
    print("chaos: settle: no open job after %.1fs" % (time.monotonic() - t0), flush=True)


def walk_root(root):
    """(blobs {internal: path}, garbage [paths]) of a storage root: the marker is expected,
    temp files (ROOT/.tmp/*, .put-*) and anything else outside the fan-out are garbage."""
    blobs, garbage = {}, []
    for d, dirs, names in os.walk(root):
        rel = os.path.relpath(d, root)
        for n in names:
            path = os.path.join(d, n)
            if rel == "." and n == ".stf-storage":
                continue
            if re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{2}", rel) and not n.startswith("."):
                blobs[n] = path
            else:
                garbage.append(path)
    return blobs, garbage


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest(), os.path.getsize(path)


def check_final(c, load, model, v):
    """Every invariant against the model, the dispatchers, the database and the disks."""
    s = c.s
    # 1. every name reads as one of its possible states, through its own dispatcher
    for t, names in load.names.items():
        for name in names:
            st = None
            for _ in range(20):
                st, h, body = request(load.port_of(t), "GET", "/%s/%s" % (BUCKET, name))
                if st in (200, 404):
                    break
                time.sleep(0.25)
            if st == 200:
                model.observe(name, model.matches(body), "final GET returned %d bytes md5 %s"
                              % (len(body), hashlib.md5(body).hexdigest()), body)
            elif st == 404:
                model.observe(name, lambda x: x is None, "final GET returned 404")
            else:
                v.add("final GET %s: %s %r" % (name, st, body[:200] if body else body))
    # 2. the database rows agree with the model
    rows = s.sql("SELECT o.name, o.etag, o.size, o.internal_name, c.name FROM objects o "
                 "JOIN buckets b ON b.id = o.bucket_id JOIN clusters c ON c.id = o.cluster_id "
                 "WHERE b.name = '%s' AND b.deleted_at IS NULL" % BUCKET)
    live = {r[0]: r for r in rows}
    for name in model.cur:
        row = live.pop(name, None)
        if row is None:
            model.observe(name, lambda x: x is None, "no database row")
        else:
            want = (row[1], int(row[2]))
            model.observe(name, lambda x: x is not None and model.versions[x] == want,
                          "database row etag %s size %s" % want)
    for name in live:
        v.add("database row for %s, a name the load never used" % name)
    # 3. the disks: every live object exactly on every storage of its cluster, nothing else
    want = {st.name: {} for st in s.storages}
    for name, etag, size, internal, cluster in rows:
        for st in s.clusters[cluster]:
            want[st.name][internal] = (name, etag, int(size))
    files = 0
    for st in s.storages:
        blobs, garbage = walk_root(st.root)
        files += len(blobs)
        for path in garbage:
            v.add("%s: garbage file %s" % (st.name, os.path.relpath(path, st.root)))
        for internal, path in blobs.items():
            if internal not in want[st.name]:
                v.add("%s: file %s of no live object" % (st.name, internal))
        for internal, (name, etag, size) in want[st.name].items():
            if internal not in blobs:
                v.add("%s: copy of %s (%s) missing" % (st.name, name, internal))
            elif md5_file(blobs[internal]) != (etag, size):
                v.add("%s: copy of %s (%s) is not its bytes" % (st.name, name, internal))
    # 4. clusterctl verify agrees
    for cname in s.clusters:
        rc, out, err = c.ctl("verify", cname, "--min-age", "0s", "--json", timeout=120)
        if rc != 0:
            v.add("clusterctl verify %s: exit %s %s %s" % (cname, rc, out[-600:], err[-300:]))
    return len(rows), files


def sanitizer_reports(p):
    return ["%s: sanitizer report in its log" % d.name for d in p.daemons
            if re.search(r"Sanitizer|runtime error:", d.log_text())]


def test_chaos():
    print("chaos: seed=%d (STF_CHAOS_SEED to repeat) load=%.0fs" % (SEED, LOAD_SECONDS),
          flush=True)
    # the guards of uploads a killed dispatcher left behind come due within seconds, not a day
    os.environ["STF_DISPATCHER_PUT_GUARD"] = "5s"
    # a job whose end could not be recorded (PostgreSQL away) runs again after its lease
    os.environ["STF_REPAIRD_LEASE"] = "10s"
    v = Violations()
    model = Model(v)
    with procs.Procs(prefix="stf-chaos-") as p:
        c = Cluster(p)
        st, _, body = c.s.req("PUT", "/" + BUCKET)
        assert st == 201, (st, body)
        load = Load([d.port for d in c.s.dispatchers], model, v)
        faults = Faults(c, random.Random(SEED))
        t0 = model.t0 = faults.t0 = time.monotonic()
        for th in load.threads:
            th.start()
        faults.thread.start()
        time.sleep(LOAD_SECONDS)
        faults.stop.set()
        faults.thread.join(120)
        load.stop.set()
        for th in load.threads:
            th.join(CLIENT_TIMEOUT + 30)
        assert not any(th.is_alive() for th in load.threads), "a client thread hung"
        assert not faults.thread.is_alive(), "the fault script hung"
        if faults.repair is not None:
            faults.repair.join(300)
        t_load = time.monotonic() - t0
        settle(c, time.monotonic() + SETTLE_SECONDS)
        t_settle = time.monotonic() - t0 - t_load
        objects, files = check_final(c, load, model, v)
        for problem in faults.errors + sanitizer_reports(p):
            v.add(problem)
        failed_jobs = c.s.sql("SELECT kind, count(*) FROM jobs WHERE state = 'failed' "
                              "GROUP BY kind")
        for note in faults.notes:
            print("chaos: %s" % note)
        n = load.counts
        print("chaos: seed=%d ops=%d acked=%d uncertain=%d refused=%d lingering=%d gets=%d "
              "failed_gets=%d faults=%d (%s) objects=%d files=%d failed_jobs=%s "
              "load=%.1fs settle=%.1fs violations=%d" %
              (SEED, n["ops"], n["acked"], n["uncertain"], n["refused"], n["lingering"],
               n["get_ok"], n["get_failed"], sum(faults.counts.values()),
               " ".join("%s=%d" % kv for kv in faults.counts.items()), objects, files,
               json.dumps(dict((k, int(x)) for k, x in failed_jobs)), t_load, t_settle,
               len(v.items)), flush=True)
        if os.environ.get("STF_CHAOS_KEEP"):  # a copy of the disks and logs to study
            shutil.copytree(p.dir, os.environ["STF_CHAOS_KEEP"], dirs_exist_ok=True)
        if v.items:
            p.dump_logs()
            print("chaos: faults (times from the load's start): %s" % "; ".join(faults.timeline))
        assert not v.items, "%d violations (seed %d):\n%s" % (len(v.items), SEED,
                                                               "\n".join(v.items[:50]))


def test_upload_outliving_its_guard():
    """The guard of an upload (a delayed delete_files job recorded before any byte moves) is
    removed by the commit; an upload still running when its guard comes due is not committed:
    503, no row, no file. Without guards nothing removes the copies of a killed dispatcher."""
    with procs.Procs(prefix="stf-guard-") as p:
        s = de.System(p, clusters=1, dispatcher=False)
        d = s.start_dispatcher(env={"STF_DISPATCHER_PUT_GUARD": "1s"})
        s.start_repaird()
        assert s.req("PUT", "/" + BUCKET)[0] == 201
        assert s.put("/%s/quick" % BUCKET, b"q" * 1000)[0] == 201
        body = os.urandom(100000)
        with socket.create_connection(("127.0.0.1", d.port), timeout=30) as sock:
            sock.sendall(b"PUT /%s/slow HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                         % (BUCKET.encode(), len(body)) + body[:50000])
            de.wait_until(lambda: s.sql_one("SELECT count(*) FROM jobs WHERE kind = "
                                            "'delete_files' AND state = 'done'") == "1",
                          timeout=30, what="the guard of the slow upload to run")
            sock.sendall(body[50000:])
            resp = procs.read_response(sock)
        assert resp is not None and resp.status == 503, resp
        assert s.req("GET", "/%s/slow" % BUCKET)[0] == 404
        assert s.req("GET", "/%s/quick" % BUCKET)[2] == b"q" * 1000
        quick = s.object_row(BUCKET, "quick")[0]
        # the copies of the refused upload go (the dispatcher records their deletion)
        disks = lambda: {st.name: walk_root(st.root) for st in s.storages}  # noqa: E731
        try:
            de.wait_until(lambda: all(set(b) == {quick} and not g for b, g in disks().values()),
                          timeout=30, what="the disks to hold the committed object alone")
        except AssertionError as e:
            raise AssertionError("%s: %s" % (e, disks()))
        assert "event=put_guard_started" in d.log_text()


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
