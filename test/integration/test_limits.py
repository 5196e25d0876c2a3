"""test/integration/test_limits.py — the connection limits of storaged and the dispatcher come
from stf.conf (docs/configuration.md, "Connection limits"): an idle connection is closed after
idle_timeout while a busy one lives on; with max_connections N the first N connections are
served and the next one waits in the listen queue until one of them closes; with
max_connections_per_ip N a further connection from the same address is closed at once while
other addresses are served; the effective values are logged; storaged clamps max_connections
to what its open-file limit allows. Real storaged and dispatcher; PostgreSQL and Redis for the
dispatcher (with-services.sh)."""
import os
import re
import select
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402

WAIT = 1.0  # how long a queued connection must stay unanswered


class Client:
    """One keep-alive HTTP/1.1 connection, optionally from a given loopback source address."""

    def __init__(self, host, port, source=None):
        src = (source, 0) if source else None
        self.s = socket.create_connection((host, port), timeout=5.0, source_address=src)

    def send_get(self, path="/_health"):
        self.s.sendall(b"GET %s HTTP/1.1\r\nHost: limits\r\n\r\n" % path.encode())

    def read(self, timeout=5.0):
        """One response, None when the server closed the connection; socket.timeout when
        nothing complete came within timeout."""
        self.s.settimeout(timeout)
        return procs.read_response(self.s)

    def get(self, path="/_health", timeout=5.0):
        """A response, or None when the server closed the connection without one."""
        try:
            self.send_get(path)
            return self.read(timeout)
        except (BrokenPipeError, ConnectionResetError):
            return None

    def peer_closed(self):
        """True once the server has closed the connection (bytes it sent first are dropped)."""
        while select.select([self.s], [], [], 0)[0]:
            try:
                if not self.s.recv(65536):
                    return True
            except ConnectionResetError:
                return True
        return False

    def close(self):
        self.s.close()


def ok(resp, what):
    assert resp is not None and resp.status == 200, (what, resp)


def unanswered(client, seconds):
    """True when no byte of an answer arrives on client for seconds."""
    try:
        client.read(seconds)
    except socket.timeout:
        return True
    return False


# --- the three behaviours, against either daemon -------------------------------------------

def check_idle_timeout(host, port, timeout_s):
    """An idle connection and one stalled in the middle of its request head are closed after
    about timeout_s; one sending a request every 0.2 s stays open throughout."""
    idle = Client(host, port)
    stalled = Client(host, port)
    stalled.s.sendall(b"GET /_health HTTP/1.1\r\nHost: limits\r\n")
    busy = Client(host, port)
    t0 = time.monotonic()
    closed = {}
    while time.monotonic() - t0 < timeout_s + 3.0:
        ok(busy.get(), "busy connection at %.1fs" % (time.monotonic() - t0))
        for name, c in (("idle", idle), ("stalled", stalled)):
            if name not in closed and c.peer_closed():
                closed[name] = time.monotonic() - t0
        time.sleep(0.2)
    assert sorted(closed) == ["idle", "stalled"], ("not closed after idle_timeout", closed)
    for name, at in closed.items():
        assert timeout_s - 0.5 <= at <= timeout_s + 2.5, (name, "closed at %.2fs" % at)
    for c in (idle, stalled, busy):
        c.close()


def check_max_connections(host, port, n):
    """n connections are served; the n+1th waits unanswered while the first n still work and
    is served as soon as one of them closes; afterwards new connections are accepted."""
    held = []
    for i in range(n):
        c = Client(host, port)
        ok(c.get(), "connection %d of %d" % (i + 1, n))  # accepted before the next one comes
        held.append(c)
    extra = Client(host, port)  # the kernel completes the handshake: it waits in the queue
    extra.send_get()
    assert unanswered(extra, WAIT), "connection %d answered beyond max_connections" % (n + 1)
    for i, c in enumerate(held):
        ok(c.get(), "held connection %d while one waits" % (i + 1))
    held.pop(0).close()
    ok(extra.read(5.0), "the waiting connection once a slot is free")
    for c in held + [extra]:
        c.close()
    fresh = []
    for i in range(n):
        c = procs.poll(lambda: try_connect(host, port), timeout=5.0,
                       what="a new connection %d after the others closed" % (i + 1))
        fresh.append(c)
    for c in fresh:
        c.close()


def try_connect(host, port, source=None):
    """A Client whose first request was answered, else None (closed by the server)."""
    c = Client(host, port, source)
    try:
        resp = c.get(timeout=2.0)
    except socket.timeout:
        resp = None
    if resp is not None and resp.status == 200:
        return c
    c.close()
    return None


def check_per_ip(host, port, n):
    """n connections from 127.0.0.1 are served, the next one from it is closed unanswered,
    one from 127.0.0.2 is served; after one closes, 127.0.0.1 may connect again."""
    held = []
    for i in range(n):
        c = Client(host, port)
        ok(c.get(), "connection %d of %d from 127.0.0.1" % (i + 1, n))
        held.append(c)
    extra = Client(host, port)
    try:
        resp = extra.get(timeout=5.0)
    except socket.timeout:
        resp = "no answer and not closed"
    assert resp is None, ("connection %d from one address not closed" % (n + 1), resp)
    extra.close()
    other = Client(host, port, "127.0.0.2")
    ok(other.get(), "a connection from 127.0.0.2")
    other.close()
    held.pop(0).close()
    held.append(procs.poll(lambda: try_connect(host, port), timeout=5.0,
                           what="127.0.0.1 to connect again after one of its connections closed"))
    for c in held:
        c.close()


# --- storaged ------------------------------------------------------------------------------

def start_storaged(p, name, keys, argv_prefix=()):
    """storaged with [storaged] keys (a dict) from its own config file and 2 threads."""
    conf = p.path(name + ".conf")
    with open(conf, "w") as f:
        f.write("[storaged]\nfsync = off\n")
        for k, v in keys.items():
            f.write("%s = %s\n" % (k, v))
    d = p.spawn(name, list(argv_prefix) + [
        procs.build_path("storaged", "storaged"), "-c", conf, "--init",
        "--root", p.path("disk-" + name), "--listen", "127.0.0.1:0", "--threads", "2"])
    host, port = d.wait_listening()
    return d, host, port


def listening_line(d):
    return d.wait_log(r"event=listening [^\n]*").group(0)


def test_storaged_limits():
    """Each key on its own storaged (2 threads): logged, and in force."""
    for key, value, check, arg in (("idle_timeout", "1s", check_idle_timeout, 1.0),
                                   ("max_connections", "2", check_max_connections, 2),
                                   ("max_connections_per_ip", "2", check_per_ip, 2)):
        with procs.Procs() as p:
            d, host, port = start_storaged(p, "storaged-" + key, {key: value})
            line = listening_line(d)
            assert " threads=2 " in line and " %s=%s " % (key, value) in line, (key, line)
            check(host, port, arg)


def test_storaged_logs_and_clamps():
    """Defaults are today's (60 s, 32K, 1024, a third of the open-file limit); a
    max_connections the open-file limit cannot hold is clamped with a warning; fewer
    connections than threads means fewer threads."""
    with procs.Procs() as p:
        d, _, _ = start_storaged(p, "defaults", {}, ["sh", "-c", 'ulimit -n 1024 && exec "$@"',
                                                     "sh"])
        line = listening_line(d)
        for want in (" max_connections=320 ", " max_connections_per_ip=0 ", " idle_timeout=60s ",
                     " connection_memory=32768 ", " listen_backlog=1024"):
            assert want in line, (want, line)
        assert d.stop() == 0
        d, _, _ = start_storaged(p, "clamped", {"max_connections": "5000",
                                                "connection_memory": "128K",
                                                "listen_backlog": "16"},
                                 ["sh", "-c", 'ulimit -n 1024 && exec "$@"', "sh"])
        line = listening_line(d)
        assert re.search(r"event=limit_clamped key=storaged.max_connections configured=5000 "
                         r"allowed=320 nofile=1024", d.log_text()), d.log_text()
        for want in (" max_connections=320 ", " connection_memory=131072 ",
                     " listen_backlog=16"):
            assert want in line, (want, line)
        assert d.stop() == 0
        d, _, _ = start_storaged(p, "one", {"max_connections": "1"})
        assert "event=threads_clamped threads=2 max_connections=1" in d.log_text()
        assert " threads=1 max_connections=1 " in listening_line(d), listening_line(d)


def test_storaged_refuses_bad_values():
    """A bad limit is a config error naming file, line and key: exit 1, nothing served."""
    with procs.Procs() as p:
        for key, value in (("idle_timeout", "1500ms"), ("max_connections_per_ip", "-1"),
                           ("connection_memory", "1K")):
            conf = p.path("bad.conf")
            with open(conf, "w") as f:
                f.write("[storaged]\n%s = %s\n" % (key, value))
            r = subprocess.run([procs.build_path("storaged", "storaged"), "-c", conf,
                                "--root", p.path("nowhere")], capture_output=True, text=True,
                               timeout=30)
            assert r.returncode == 1, (key, r)
            want = "storaged: %s:2: bad value for storaged.%s: '%s' (" % (conf, key, value)
            assert r.stderr.startswith(want), (want, r.stderr)


# --- dispatcher ----------------------------------------------------------------------------

def with_dispatcher(system, name, conf, check, *args):
    """Starts a dispatcher with these [dispatcher] keys (2 threads), runs check(host, port,
    *args) against it, stops it. Returns its event=listening line."""
    system.dconf = dict(system.dconf, threads="2", **conf)
    system.write_conf()
    d = system.start_dispatcher(name)
    line = listening_line(d)
    check(d.host, d.port, *args)
    assert d.stop() == 0, "%s: not a clean exit on SIGTERM" % name
    for k in list(conf):
        del system.dconf[k]
    system.write_conf()
    return line


def test_dispatcher_limits():
    with procs.Procs() as p:
        s = de.System(p, clusters=1, per_cluster=1, dispatcher=False)
        line = with_dispatcher(s, "d-defaults", {}, lambda h, port: None)
        for want in (" threads=2 ", " max_connections=20000 ", " max_connections_per_ip=0 ",
                     " idle_timeout=60s ", " connection_memory=65536 ", " listen_backlog=4096"):
            assert want in line, (want, line)
        line = with_dispatcher(s, "d-idle", {"idle_timeout": "1s"}, check_idle_timeout, 1.0)
        assert " idle_timeout=1s " in line, line
        line = with_dispatcher(s, "d-max", {"max_connections": "2"}, check_max_connections, 2)
        assert " max_connections=2 " in line, line
        line = with_dispatcher(s, "d-per-ip", {"max_connections_per_ip": "2"}, check_per_ip, 2)
        assert " max_connections_per_ip=2 " in line, line


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
