"""test/integration/test_dispatcher_memory.py — the dispatcher's memory does not grow with object
size or with idle clients: RSS grows < 64 MiB while a 200 MiB object goes up (and comes back
down), and stays < 256 MiB with 1,000 concurrent connections. Real storaged, PostgreSQL, Redis."""
import hashlib
import os
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402

MiB = 1024 * 1024


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for %d" % pid)


class RssWatch:
    """Samples a process's RSS every 20 ms in a thread; max() is the peak seen."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = rss_bytes(pid)
        self.stop_flag = threading.Event()
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        while not self.stop_flag.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def stop(self):
        self.stop_flag.set()
        self.t.join()
        return self.peak


def block(i):
    """1 MiB of deterministic, incompressible-enough bytes (the test never holds 200 MiB)."""
    return hashlib.sha256(b"%d" % i).digest() * (MiB // 32)


def test_200mib_upload_and_download():
    with procs.Procs() as p:
        s = de.System(p, clusters=1, conf={"max_object_size": "1G"})
        d = s.dispatchers[0]
        s.req("PUT", "/b")
        assert s.put("/b/warm", os.urandom(300000))[0] == 201  # spool file, curl, pools warm
        assert s.req("GET", "/b/warm")[0] == 200
        base = rss_bytes(d.pid)
        watch = RssWatch(d.pid)
        md5 = hashlib.md5()
        n = 200
        with socket.create_connection((s.host, s.port), timeout=120) as c:
            c.sendall(b"PUT /b/huge HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (n * MiB))
            for i in range(n):
                b = block(i)
                md5.update(b)
                c.sendall(b)
            r = procs.read_response(c)
        up_peak = watch.stop()
        assert r.status == 201, r
        assert r.headers["etag"] == '"%s"' % md5.hexdigest()
        # download, streamed and checked piecewise
        watch = RssWatch(d.pid)
        got = hashlib.md5()
        total = 0
        with socket.create_connection((s.host, s.port), timeout=120) as c:
            c.sendall(b"GET /b/huge HTTP/1.1\r\nHost: t\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += c.recv(65536)
            head, _, rest = head.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            got.update(rest)
            total += len(rest)
            while total < n * MiB:
                chunk = c.recv(1 << 20)
                assert chunk, "connection closed after %d bytes" % total
                got.update(chunk)
                total += len(chunk)
        down_peak = watch.stop()
        assert got.hexdigest() == md5.hexdigest()
        print("rss base %.1f MiB, upload peak +%.1f MiB, download peak +%.1f MiB"
              % (base / MiB, (up_peak - base) / MiB, (down_peak - base) / MiB))
        assert up_peak - base < 64 * MiB, "upload grew RSS by %d MiB" % ((up_peak - base) // MiB)
        assert down_peak - base < 64 * MiB, "download grew RSS by %d MiB" % (
            (down_peak - base) // MiB)


def test_1000_connections():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    with procs.Procs() as p:
        s = de.System(p, clusters=1)
        d = s.dispatchers[0]
        s.req("PUT", "/b")
        assert s.put("/b/small", b"s" * 4096)[0] == 201
        socks = []
        watch = RssWatch(d.pid)
        try:
            for i in range(1000):
                c = socket.create_connection((s.host, s.port), timeout=30)
                socks.append(c)
            # every connection has made a request (keep-alive, open afterwards)
            for c in socks:
                c.sendall(b"GET /b/small HTTP/1.1\r\nHost: t\r\n\r\n")
            for c in socks:
                r = procs.read_response(c)
                assert r.status == 200 and len(r.body) == 4096, r
            de.wait_until(lambda: s.metrics()["stf_dispatcher_connections"] >= 1000,
                          what="1000 open connections")
            # and a request on each again while all are open
            for c in socks:
                c.sendall(b"HEAD /b/small HTTP/1.1\r\nHost: t\r\n\r\n")
            for c in socks:
                assert procs.read_response(c, head_request=True).status == 200
            rss = rss_bytes(d.pid)
        finally:
            peak = watch.stop()
            for c in socks:
                c.close()
        print("rss with 1000 connections %.1f MiB (peak %.1f MiB)" % (rss / MiB, peak / MiB))
        assert peak < 256 * MiB, "RSS %d MiB with 1000 connections" % (peak // MiB)


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
