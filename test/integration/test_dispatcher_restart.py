"""test/integration/test_dispatcher_restart.py — zero-downtime deploys: a new dispatcher starts on
the address of the running one (SO_REUSEPORT), the old one gets SIGTERM, stops accepting,
finishes what is in flight and exits 0; under a steady PUT/GET/DELETE load (new connections and
keep-alive clients, uploads in flight across the switch) not a single request fails."""
import http.client
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402


class Load:
    """Client threads hammering host:port until stop(); every failure is kept."""

    def __init__(self, host, port, threads=6):
        self.host, self.port = host, port
        self.stop_flag = threading.Event()
        self.failures = []
        self.done = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.fresh_connections, args=(i,))
                        for i in range(threads)]
        self.threads += [threading.Thread(target=self.keepalive, args=(100 + i,))
                         for i in range(2)]
        self.threads.append(threading.Thread(target=self.slow_uploads))

    def fail(self, what):
        with self.lock:
            self.failures.append(what)

    def ok(self):
        with self.lock:
            self.done += 1

    def one(self, method, path, body=None, conn=None):
        """One request; a fresh connection unless conn is given."""
        own = conn is None
        c = conn or http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            if own:
                c.close()

    def fresh_connections(self, n):
        i = 0
        while not self.stop_flag.is_set():
            path = "/load/t%d-%d" % (n, i)
            body = os.urandom(100 + i % 5000)
            try:
                st, _ = self.one("PUT", path, body)
                if st != 201:
                    self.fail(("PUT", path, st))
                st, got = self.one("GET", path)
                if st != 200 or got != body:
                    self.fail(("GET", path, st))
                st, _ = self.one("DELETE", path)
                if st != 204:
                    self.fail(("DELETE", path, st))
                self.ok()
            except Exception as e:  # noqa: BLE001 — any exception is a dropped request
                self.fail((path, repr(e)))
            i += 1

    def keepalive(self, n):
        """A keep-alive client: it honours Connection: close (http.client reconnects for the
        next request), as clients of a draining server must."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        i = 0
        while not self.stop_flag.is_set():
            path = "/load/k%d-%d" % (n, i)
            body = b"k" * (i % 300)
            try:
                st, _ = self.one("PUT", path, body, conn=c)
                if st != 201:
                    self.fail(("PUT", path, st))
                st, got = self.one("GET", path, conn=c)
                if st != 200 or got != body:
                    self.fail(("GET", path, st))
                self.ok()
            except Exception as e:  # noqa: BLE001
                self.fail((path, repr(e)))
                c.close()
            i += 1
        c.close()

    def slow_uploads(self):
        """Uploads that are still sending their body when the old dispatcher is told to stop."""
        i = 0
        while not self.stop_flag.is_set():
            path = "/load/slow%d" % i
            body = os.urandom(256 * 1024)
            try:
                c = http.client.HTTPConnection(self.host, self.port, timeout=30)
                c.putrequest("PUT", path)
                c.putheader("Content-Length", str(len(body)))
                c.endheaders()
                for off in range(0, len(body), 32 * 1024):
                    c.send(body[off:off + 32 * 1024])
                    time.sleep(0.02)
                r = c.getresponse()
                r.read()
                c.close()
                if r.status != 201:
                    self.fail(("PUT", path, r.status))
                elif self.one("GET", path)[1] != body:
                    self.fail(("GET", path, "bytes differ"))
                else:
                    self.ok()
            except Exception as e:  # noqa: BLE001
                self.fail((path, repr(e)))
            i += 1

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(60)


MIGRATE = "/proc/sys/net/ipv4/tcp_migrate_req"


def set_migrate(value):
    """net.ipv4.tcp_migrate_req (Linux >= 5.14, per network namespace): connections that are
    queued on (or half-way into) the old dispatcher's socket when it leaves the SO_REUSEPORT
    group move to the new one instead of being reset. docs/api.md asks operators to set it;
    the test sets it like a deployment would. Returns the previous value (None: unavailable)."""
    try:
        with open(MIGRATE) as f:
            old = f.read().strip()
        with open(MIGRATE, "w") as f:
            f.write(value)
        return old
    except OSError:
        return None


def test_rolling_restart_under_load_drops_nothing():
    old_migrate = set_migrate("1")
    try:
        run_rolling_restart()
    finally:
        if old_migrate is not None:
            set_migrate(old_migrate)


def run_rolling_restart():
    with procs.Procs() as p:
        s = de.System(p, clusters=2)
        s.req("PUT", "/load")
        addr = "127.0.0.1:%d" % s.port
        load = Load(s.host, s.port)
        load.start()
        try:
            current = s.dispatchers[0]
            for rnd in range(3):
                de.wait_until(lambda: load.done >= 30 * (rnd + 1), timeout=30,
                              what="load to run against the current dispatcher")
                new = s.start_dispatcher(name="dispatcher-gen%d" % (rnd + 2), listen=addr)
                assert new.port == s.port
                current.signal(signal.SIGTERM)
                assert current.wait_exit(timeout=40) == 0, "old dispatcher did not exit cleanly"
                log = current.log_text()
                assert "event=draining" in log and "event=stopped" in log
                assert "drain_timeout" not in log
                current = new
            de.wait_until(lambda: load.done >= 150, timeout=30, what="load after the restarts")
        finally:
            load.stop()
        assert not load.failures, "%d failed requests, e.g. %s" % (len(load.failures),
                                                                     load.failures[:5])
        assert load.done >= 150
        # every generation served part of the load
        for d in s.dispatchers:
            assert "event=object_stored" in d.log_text(), d.name


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
