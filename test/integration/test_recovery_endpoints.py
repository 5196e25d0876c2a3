#!/usr/bin/env python3
"""test/integration/test_recovery_endpoints.py — storaged's /_rsync/ endpoints (whole-disk copy)
against real processes: the manifest (order, sizes, mtimes, `after`, junk left out), a copy of
every blob from one storaged to another through delta + patch, a stale copy fixed through
signature + delta + patch, and the refusals (bad names and headers, wrong MD5, cut deltas)."""
import hashlib
import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", "."), "test", "harness"))
import procs  # noqa: E402

STORAGED = procs.build_path("storaged", "storaged")


def start(p, name):
    root = p.path(name)
    d = p.spawn(name, [STORAGED, "--init", "--root", root, "--listen", "127.0.0.1:0",
                       "--log-level", "debug"])
    host, port = d.wait_listening()
    return root, host, port


def req(host, port, method, path, body=None, headers=None):
    return procs.http_request(host, port, method, path, body, headers)


def put(host, port, name, data):
    st, _, body = req(host, port, "PUT", "/" + name, data, {"Content-Length": str(len(data))})
    assert st == 201, (name, st, body)


def blob_file(root, name):
    for aa in os.listdir(root):
        if len(aa) != 2:
            continue
        for bb in os.listdir(os.path.join(root, aa)):
            path = os.path.join(root, aa, bb, name)
            if os.path.exists(path):
                return path
    return None


def temp_files(root):
    """Temp files: in ROOT/.tmp, and the patches' ROOT/aa/bb/.put-* next to their blobs."""
    out = [os.path.join(root, ".tmp", f) for f in os.listdir(os.path.join(root, ".tmp"))]
    for dirpath, _, files in os.walk(root):
        out += [os.path.join(dirpath, f) for f in files if f.startswith(".put-")]
    return out


def manifest(host, port, after=None):
    path = "/_rsync/manifest" + ("?after=" + after if after is not None else "")
    st, hdrs, body = req(host, port, "GET", path)
    assert st == 200, (st, body)
    lines = body.decode().split("\n")
    assert lines[-1] == "", "manifest must end with a newline"
    m = re.fullmatch(r"# end files=(\d+) bytes=(\d+)", lines[-2])
    assert m, "manifest must end with its end line: %r" % lines[-3:]
    entries = []
    for line in lines[:-2]:
        rel, size, mtime = line.split(" ")
        assert re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{2}/[A-Za-z0-9_.-]+", rel), line
        assert re.fullmatch(r"\d+\.\d{9}", mtime), line
        entries.append((rel, int(size), mtime))
    assert int(m.group(1)) == len(entries), (m.group(0), len(entries))
    assert int(m.group(2)) == sum(e[1] for e in entries)
    return entries


def mtime_of(path):
    ns = os.stat(path).st_mtime_ns
    return "%d.%09d" % (ns // 10**9, ns % 10**9)


def copy_blob(src, dst, name, signature=True, sync=None):
    """signature (of dst's copy, if any) -> delta (src) -> patch (dst). Returns the patch reply."""
    sig = b""
    if signature:
        st, _, sig = req(*dst, "POST", "/_rsync/signature/" + name, b"")
        assert st in (200, 404), (st, sig)
        if st == 404:
            sig = b""
    st, h, delta = req(*src, "POST", "/_rsync/delta/" + name, sig)
    assert st == 200, (st, delta)
    headers = {"X-STF-Expect-Size": h["x-stf-size"], "X-STF-Expect-MD5": h["x-stf-md5"],
               "X-STF-Mtime": h["x-stf-mtime"]}
    if sync:
        headers["X-STF-Sync"] = sync
    return req(*dst, "POST", "/_rsync/patch/" + name, delta, headers), h, len(sig), len(delta)


def test_manifest():
    with procs.Procs() as p:
        root, host, port = start(p, "a")
        # enough names that many fan-out directories hold several (the `after` edge cases)
        names = ["%032x" % (i * 7919) for i in range(700)] + ["x", "A-b_c.d", "z.", "get-1"]
        sizes = {}
        for i, n in enumerate(names):
            data = os.urandom(i % 50 * 97)
            put(host, port, n, data)
            sizes[n] = len(data)
        # junk that is not a blob: temp files, files in wrong places, links, directories
        open(os.path.join(root, ".tmp", "put-1-1"), "wb").write(b"half")
        os.makedirs(os.path.join(root, "zz"), exist_ok=True)
        open(os.path.join(root, "zz", "x"), "wb").write(b"?")
        leaf = os.path.dirname(blob_file(root, "x"))
        wrong = "wrongplace" if not os.path.exists(os.path.join(leaf, "wrongplace")) else "wp2"
        open(os.path.join(leaf, wrong), "wb").write(b"misplaced")
        os.symlink(blob_file(root, "z."), os.path.join(os.path.dirname(blob_file(root, "z.")),
                                                        "a-link"))
        os.mkdir(os.path.join(os.path.dirname(blob_file(root, "get-1")), "subdir"))
        open(os.path.join(root, "stray"), "wb").write(b"at the root")

        entries = manifest(host, port)
        rels = [e[0] for e in entries]
        assert rels == sorted(rels), "manifest must be in byte order"
        assert sorted(r.split("/")[2] for r in rels) == sorted(names), rels
        for rel, size, mtime in entries:
            path = os.path.join(root, rel)
            assert size == os.path.getsize(path) == sizes[rel.split("/")[2]], rel
            assert mtime == mtime_of(path), (rel, mtime, mtime_of(path))
        assert len({r[:2] for r in rels}) < len(rels) - 300, "want crowded fan-out dirs"
        # after: the exact suffix, from every position
        for k in range(0, len(rels), 7):
            assert [e[0] for e in manifest(host, port, rels[k])] == rels[k + 1:], k
        assert manifest(host, port, rels[-1]) == []
        for bad in ("../etc", "00/00", "zz/zz/x", "00/00/.hidden", "%2e%2e"):
            st, _, body = req(host, port, "GET", "/_rsync/manifest?after=" + bad)
            assert st == 400, (bad, st, body)
        # an empty disk: only the end line
        _, host2, port2 = start(p, "b")
        assert manifest(host2, port2) == []


def test_copy_whole_disk():
    with procs.Procs() as p:
        ra, ha, pa = start(p, "a")
        rb, hb, pb = start(p, "b")
        blobs = {"%032x" % (i * 104729): os.urandom((i * 7717) % 300000) for i in range(30)}
        blobs["empty"] = b""
        for n, data in blobs.items():
            put(ha, pa, n, data)
        for rel, size, mtime in manifest(ha, pa):
            name = rel.split("/")[2]
            (st, h, body), _, siglen, dlen = copy_blob((ha, pa), (hb, pb), name,
                                                       sync="defer")
            assert st == 201, (name, st, body)
            assert h["etag"] == '"%s"' % hashlib.md5(blobs[name]).hexdigest()
            assert int(h["x-stf-literal-bytes"]) == size and siglen == 0
        st, _, _ = req(hb, pb, "POST", "/_rsync/sync")
        assert st == 204
        assert manifest(hb, pb) == manifest(ha, pa), "the copy has the same paths/sizes/mtimes"
        for n, data in blobs.items():
            assert open(blob_file(rb, n), "rb").read() == data
        st, _, body = req(hb, pb, "GET", "/_stats")
        assert b'"files":%d' % len(blobs) in body, body
        assert temp_files(rb) == []


def test_stale_copy_sends_little():
    with procs.Procs() as p:
        ra, ha, pa = start(p, "a")
        rb, hb, pb = start(p, "b")
        name = "0123456789abcdef0123456789abcdef"
        data = bytearray(os.urandom(2 * 1024 * 1024))
        put(hb, pb, name, bytes(data))  # the stale copy
        for off in (1000, 700000, 1500000):
            data[off:off + 50] = os.urandom(50)
        data[900000:900000] = b"inserted" * 100
        put(ha, pa, name, bytes(data))  # the current one
        (st, h, body), dh, siglen, dlen = copy_blob((ha, pa), (hb, pb), name)
        assert st == 201, (st, body)
        assert open(blob_file(rb, name), "rb").read() == bytes(data)
        lit = int(h["x-stf-literal-bytes"])
        assert lit < 64 * 1024, lit
        assert siglen + dlen < len(data) // 20, (siglen, dlen)
        assert mtime_of(blob_file(rb, name)) == dh["x-stf-mtime"]


def test_refusals():
    with procs.Procs() as p:
        ra, ha, pa = start(p, "a")
        rb, hb, pb = start(p, "b")
        name = "feedfacefeedfacefeedfacefeedface"
        old, new = os.urandom(100000), os.urandom(120000)
        put(ha, pa, name, new)
        put(hb, pb, name, old)
        st, h, delta = req(ha, pa, "POST", "/_rsync/delta/" + name, b"")
        assert st == 200
        good = {"X-STF-Expect-Size": h["x-stf-size"], "X-STF-Expect-MD5": h["x-stf-md5"]}

        def patch(body, headers, path=None):
            return req(hb, pb, "POST", path or "/_rsync/patch/" + name, body, headers)

        for hdrs in ({}, {"X-STF-Expect-Size": "12"}, {"X-STF-Expect-MD5": "0" * 32},
                     dict(good, **{"X-STF-Expect-MD5": "xyz"}),
                     dict(good, **{"X-STF-Expect-Size": "-1"}),
                     dict(good, **{"X-STF-Mtime": "yesterday"}),
                     dict(good, **{"X-STF-Sync": "later"})):
            st, _, body = patch(delta, hdrs)
            assert st == 400, (hdrs, st, body)
        st, _, body = patch(delta, dict(good, **{"X-STF-Expect-MD5": "0" * 32}))
        assert st == 422 and b"verification failed" in body, (st, body)
        st, _, body = patch(delta, dict(good, **{"X-STF-Expect-Size": str(len(new) - 1)}))
        assert st == 422, (st, body)
        st, _, body = patch(delta[:len(delta) // 2], good)
        assert st == 400, (st, body)
        st, _, body = patch(b"not a delta at all", good)
        assert st == 400, (st, body)
        st, _, body = patch(delta + b"trailing", good)
        assert st == 400, (st, body)
        assert open(blob_file(rb, name), "rb").read() == old, "a refused patch changes nothing"
        for path in ("/_rsync/patch/.hidden", "/_rsync/patch/a/b", "/_rsync/patch/",
                     "/_rsync/patch/a%2fb", "/_rsync/patch/a:b", "/_rsync/delta/.tmp",
                     "/_rsync/signature/" + "x" * 129):
            st, _, body = req(hb, pb, "POST", path, b"", good)
            assert st == 400, (path, st, body)
        for path in ("/_rsync/signature/nosuchblob", "/_rsync/delta/nosuchblob"):
            st, _, _ = req(hb, pb, "POST", path, b"")
            assert st == 404, (path, st)
        st, _, body = req(ha, pa, "POST", "/_rsync/delta/" + name, b"garbage signature")
        assert st == 400, (st, body)
        st, _, _ = req(hb, pb, "GET", "/_rsync/patch/" + name)
        assert st == 405
        st, _, _ = req(hb, pb, "GET", "/_rsync/nothing")
        assert st == 404
        # raw: a request target with '..' never reaches the endpoint
        r = procs.raw_request(hb, pb, b"POST /_rsync/patch/../x HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 0\r\n\r\n")
        assert r.status == 400, r
        # the good patch finally goes through, and nothing is left in .tmp
        st, _, body = patch(delta, good)
        assert st == 201, (st, body)
        assert open(blob_file(rb, name), "rb").read() == new
        assert temp_files(rb) == []


def test_patch_cut_short():
    """A client that dies mid-delta leaves no blob and no temp file behind."""
    with procs.Procs() as p:
        ra, ha, pa = start(p, "a")
        rb, hb, pb = start(p, "b")
        name = "cafebabecafebabecafebabecafebabe"
        data = os.urandom(3 * 1024 * 1024)
        put(ha, pa, name, data)
        st, h, delta = req(ha, pa, "POST", "/_rsync/delta/" + name, b"")
        s = socket.create_connection((hb, pb))
        s.sendall(("POST /_rsync/patch/%s HTTP/1.1\r\nHost: x\r\nX-STF-Expect-Size: %s\r\n"
                   "X-STF-Expect-MD5: %s\r\nContent-Length: %d\r\n\r\n"
                   % (name, h["x-stf-size"], h["x-stf-md5"], len(delta))).encode())
        s.sendall(delta[:len(delta) // 3])
        def patched_bytes():  # what the patch wrote so far into its temp file
            total = 0
            for path in temp_files(rb):
                try:
                    total += os.path.getsize(path)
                except FileNotFoundError:
                    pass
            return total
        # close only once the piece sent has been applied (MHD 0.9.75 may miss a close that
        # arrives while it still holds unread body bytes, until its idle timeout)
        procs.poll(lambda: patched_bytes() >= len(delta) // 3 - 4096,
                   what="the first third of the delta to be applied")
        s.close()
        procs.poll(lambda: not temp_files(rb), what="the temp file to go")
        assert blob_file(rb, name) is None


def test_crash_leftovers_removed_at_start():
    """A temp file of a patch left by a crash (kill -9 mid-body) is gone after a restart."""
    with procs.Procs() as p:
        ra, ha, pa = start(p, "a")
        rb, hb, pb = start(p, "b")
        name = "abcdefabcdefabcdefabcdefabcdef00"
        put(ha, pa, name, os.urandom(2 * 1024 * 1024))
        st, h, delta = req(ha, pa, "POST", "/_rsync/delta/" + name, b"")
        s = socket.create_connection((hb, pb))
        s.sendall(("POST /_rsync/patch/%s HTTP/1.1\r\nHost: x\r\nX-STF-Expect-Size: %s\r\n"
                   "X-STF-Expect-MD5: %s\r\nContent-Length: %d\r\n\r\n"
                   % (name, h["x-stf-size"], h["x-stf-md5"], len(delta))).encode())
        s.sendall(delta[:len(delta) // 2])
        procs.poll(lambda: temp_files(rb), what="a temp file")
        b = [d for d in p.daemons if d.name == "b"][0]
        b.kill9()
        s.close()
        assert temp_files(rb), "the crash leaves the temp file"
        d = p.spawn("b2", [STORAGED, "--root", rb, "--listen", "127.0.0.1:0"])
        d.wait_listening()
        assert temp_files(rb) == [] and blob_file(rb, name) is None
        assert re.search(r"tmp_removed=1\b", d.log_text()), d.log_text()


def pull(dst, src, lines, headers=None):
    """POST /_rsync/pull on dst from src; returns {name: (status, bytes, reason)} in order."""
    h = {"X-STF-Source": "http://%s:%d" % src}
    h.update(headers or {})
    st, _, body = req(*dst, "POST", "/_rsync/pull", "".join(l + "\n" for l in lines).encode(), h)
    assert st == 200, (st, body)
    out = body.decode().split("\n")
    assert out[-2:] == ["# end", ""], out[-3:]
    res = {}
    for line in out[:-2]:
        name, status, nbytes, reason = line.split(" ", 3)
        res[name] = (int(status), int(nbytes), reason)
    assert list(res) == [l.split(" ")[0] for l in lines], "one line per blob, in order"
    return res


def test_pull_batch():
    """The target pulls many blobs at once from the peer (pack stream): verified against the MD5
    given (or the one the peer computed while sending), mtime kept, a corrupt or missing blob
    reported for itself while the others are stored."""
    with procs.Procs() as p:
        ra, ha, pa = start(p, "a")
        rb, hb, pb = start(p, "b")
        blobs = {"%032x" % (i * 7919): os.urandom((i * 5113) % 400000) for i in range(40)}
        blobs["empty"] = b""
        for n, data in blobs.items():
            put(ha, pa, n, data)
        bad = "%032x" % (3 * 7919)  # the peer's copy rots: the ETag no longer matches
        with open(blob_file(ra, bad), "r+b") as f:
            f.seek(10)
            f.write(b"X" if blobs[bad][10:11] != b"X" else b"Y")
        names = sorted(blobs)
        lines = []
        for i, n in enumerate(names):  # every other one without a known MD5
            md5 = hashlib.md5(blobs[n]).hexdigest() if i % 2 == 0 or n == bad else "-"
            lines.append("%s %d %s" % (n, len(blobs[n]), md5))
        lines.insert(5, "feedfacefeedfacefeedfacefeedface 10 -")  # not on the peer
        res = pull((hb, pb), (ha, pa), lines)
        assert res["feedfacefeedfacefeedfacefeedface"][0] == 404
        assert res[bad][0] == 422 and "verification failed" in res[bad][2], res[bad]
        assert blob_file(rb, bad) is None, "a blob that failed verification is not stored"
        for n in names:
            if n == bad:
                continue
            assert res[n] == (201, len(blobs[n]), "stored"), (n, res[n])
            path = blob_file(rb, n)
            assert open(path, "rb").read() == blobs[n]
            assert mtime_of(path) == mtime_of(blob_file(ra, n)), "the peer's mtime is kept"
        assert temp_files(rb) == []
        st, _, _ = req(hb, pb, "POST", "/_rsync/sync")
        assert st == 204


def test_pull_refusals_and_dead_peer():
    with procs.Procs() as p:
        ra, ha, pa = start(p, "a")
        rb, hb, pb = start(p, "b")
        name = "%032x" % 42
        put(ha, pa, name, b"x" * 1000)
        line = ("%s 1000 -\n" % name).encode()
        src = {"X-STF-Source": "http://%s:%d" % (ha, pa)}
        for headers, body in (({}, line),
                              ({"X-STF-Source": "file:///etc/passwd"}, line),
                              (src, b"../x 1 -\n"),
                              (src, b"%s 1 zz\n" % name.encode()),
                              (src, b"")):
            st, _, text = req(hb, pb, "POST", "/_rsync/pull", body, headers)
            assert st == 400, (headers, body, st, text)
        st, _, text = req(ha, pa, "POST", "/_rsync/pack", b"../../etc 1\n")
        assert st == 400, (st, text)
        # the pack stream itself: header, the bytes, the MD5 the peer computed, the end line
        st, _, text = req(ha, pa, "POST", "/_rsync/pack", b"%s 1\nabsent 0\n" % name.encode())
        assert st == 200
        head, rest = text.split(b"\n", 1)
        assert re.fullmatch(rb"\+ %s 1000 \d+\.\d{9}" % name.encode(), head), head
        assert rest[:1000] == b"x" * 1000
        assert rest[1000:] == b". %s\n- absent\n# end files=1\n" % (
            hashlib.md5(b"x" * 1000).hexdigest().encode()), rest[1000:]
        # a peer that does not answer: every blob reported 502, nothing stored
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
        dead.close()
        res = pull((hb, pb), ("127.0.0.1", port), [line.decode().strip()])
        assert res[name][0] == 502, res
        assert blob_file(rb, name) is None and temp_files(rb) == []


class StallingPeer:
    """A peer whose /_rsync/pack answer starts, then sends nothing until release()."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.done = threading.Event()
        self.conn = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.conn, _ = self.sock.accept()
        self.conn.recv(65536)
        self.conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        self.accepted.set()
        self.done.wait(120)
        self.conn.close()

    def release(self):
        """Cuts the stream short: the pull then reports its blobs 502."""
        self.done.set()
        self.thread.join(10)
        self.sock.close()


def pull_in_background(dst, src, line):
    out = {}

    def run():
        try:
            out["res"] = req(*dst, "POST", "/_rsync/pull", line,
                             {"X-STF-Source": "http://%s:%d" % src})
        except OSError as e:
            out["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_pull_runs_off_the_http_threads():
    """A pull waits on the peer on an offload thread, its connection suspended: storaged's only
    HTTP thread (--threads 1) goes on answering; SIGTERM waits for the pull and its answer."""
    with procs.Procs() as p:
        root = p.path("b")
        d = p.spawn("b", [STORAGED, "--init", "--root", root, "--listen", "127.0.0.1:0",
                          "--threads", "1"])
        hb, pb = d.wait_listening()
        peer = StallingPeer()
        line = ("%032x 1000 -\n" % 7).encode()
        t, out = pull_in_background((hb, pb), ("127.0.0.1", peer.port), line)
        assert peer.accepted.wait(10), "storaged did not reach the peer"
        for path in ("/_health", "/%032x" % 8):
            t0 = time.monotonic()
            st, _, _ = req(hb, pb, "GET", path)
            assert st in (200, 404) and time.monotonic() - t0 < 2.0, (path, st)
        d.signal(signal.SIGTERM)  # drains: the pull is in flight
        time.sleep(0.5)
        assert d.alive() and t.is_alive(), "storaged stopped with a pull in flight"
        peer.release()
        t.join(10)
        st, _, body = out["res"]
        assert st == 200 and body.split(b" ")[1] == b"502", (st, body)
        assert d.wait_exit(10) == 0


def test_pull_cancelled_by_a_forced_stop():
    """A second SIGTERM gives up a stalled pull at once: no wait for the peer, no crash of
    libmicrohttpd over a suspended connection, nothing stored."""
    with procs.Procs() as p:
        root, hb, pb = start(p, "b")
        d = p.daemons[-1]
        peer = StallingPeer()
        t, out = pull_in_background((hb, pb), ("127.0.0.1", peer.port),
                                    ("%032x 1000 -\n" % 7).encode())
        assert peer.accepted.wait(10), "storaged did not reach the peer"
        d.signal(signal.SIGTERM)
        time.sleep(0.3)
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.wait_exit(10) == 0
        assert time.monotonic() - t0 < 5.0
        t.join(10)
        peer.release()
        assert blob_file(root, "%032x" % 7) is None and temp_files(root) == []


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
