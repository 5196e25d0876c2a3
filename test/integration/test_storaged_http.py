#!/usr/bin/env python3
"""test/integration/test_storaged_http.py — storaged's HTTP API against a real process:
PUT/GET/HEAD/DELETE round trips (0 bytes to multi-MB, chunked, keep-alive), Content-MD5,
short bodies, Range, If-Modified-Since, /_stats and /_health, checked on disk too."""
import base64
import glob
import hashlib
import http.client
import os
import re
import socket
import sys

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", "."), "test", "harness"))
import procs  # noqa: E402

STORAGED = procs.build_path("storaged", "storaged")


def start_storaged(p, root, *extra, name="storaged"):
    d = p.spawn(name, [STORAGED, "--init", "--root", root, "--listen", "127.0.0.1:0",
                       "--log-level", "debug", *extra])
    host, port = d.wait_listening()
    return d, host, port


class Client:
    """A keep-alive client that checks the headers every storaged response must carry."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=30)

    def req(self, method, path, body=None, headers=None):
        status, hdrs, data = procs.http_request(self.host, self.port, method, path, body,
                                                headers, conn=self.conn)
        assert hdrs.get("x-content-type-options") == "nosniff", (method, path, hdrs)
        if status >= 400 and method != "HEAD":
            assert data.endswith(b"\n") and data.count(b"\n") == 1, (status, data)
        return status, hdrs, data

    def close(self):
        self.conn.close()


def blob_files(root, name):
    """The on-disk copies of a blob: exactly ROOT/aa/bb/name."""
    hits = glob.glob(os.path.join(root, "*", "*", name))
    for h in hits:
        rel = os.path.relpath(h, root)
        assert re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{2}/" + re.escape(name), rel), rel
    return hits


def tmp_entries(root):
    return os.listdir(os.path.join(root, ".tmp"))


def stats(c):
    status, hdrs, data = c.req("GET", "/_stats")
    assert status == 200 and hdrs["content-type"] == "application/json", (status, hdrs)
    import json
    s = json.loads(data)
    assert set(s) == {"bytes_total", "bytes_used", "bytes_free", "files"}, s
    assert all(isinstance(v, int) and v >= 0 for v in s.values()), s
    assert s["bytes_total"] >= s["bytes_used"] and s["bytes_total"] >= s["bytes_free"] > 0, s
    return s


def test_round_trips():
    with procs.Procs() as p:
        root = p.path("root")
        d, host, port = start_storaged(p, root)
        c = Client(host, port)
        bodies = {"empty": b"", "one": b"x", "small": os.urandom(4096),
                  "big.bin": os.urandom(3 * 1024 * 1024 + 17),
                  "0123456789abcdef0123456789abcdef": os.urandom(100000)}
        for name, body in bodies.items():
            status, hdrs, data = c.req("PUT", "/" + name, body,
                                       {"Content-Length": str(len(body))})
            assert status == 201, (name, status, data)
            assert hdrs["etag"] == '"%s"' % hashlib.md5(body).hexdigest(), (name, hdrs)
        for name, body in bodies.items():
            status, hdrs, data = c.req("GET", "/" + name)
            assert status == 200 and data == body, (name, status, len(data))
            assert int(hdrs["content-length"]) == len(body)
            assert hdrs["accept-ranges"] == "bytes" and "last-modified" in hdrs, hdrs
            assert "connection" not in hdrs, hdrs  # keep-alive kept
            status, hdrs, data = c.req("HEAD", "/" + name)
            assert status == 200 and data == b"" and int(hdrs["content-length"]) == len(body)
            files = blob_files(root, name)
            assert len(files) == 1, files
            with open(files[0], "rb") as f:
                assert f.read() == body, name
        assert tmp_entries(root) == []
        assert stats(c)["files"] == len(bodies)

        # Overwrite replaces the bytes; the count does not change.
        status, _, _ = c.req("PUT", "/small", b"new content")
        assert status == 201
        assert c.req("GET", "/small")[2] == b"new content"
        assert stats(c)["files"] == len(bodies)

        # DELETE: 204, then 404; the file is gone from the disk.
        assert c.req("DELETE", "/small")[0] == 204
        assert c.req("DELETE", "/small")[0] == 404
        assert c.req("GET", "/small")[0] == 404
        assert c.req("HEAD", "/small")[0] == 404
        assert blob_files(root, "small") == []
        assert stats(c)["files"] == len(bodies) - 1
        c.close()


def test_chunked_upload():
    with procs.Procs() as p:
        root = p.path("root")
        d, host, port = start_storaged(p, root)
        pieces = [os.urandom(n) for n in (1, 70000, 0, 5, 300000)]
        pieces = [x for x in pieces if x]
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("PUT", "/chunked", body=iter(pieces), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        resp.read()
        whole = b"".join(pieces)
        assert resp.status == 201, resp.status
        assert resp.getheader("ETag") == '"%s"' % hashlib.md5(whole).hexdigest()
        conn.close()
        assert procs.http_request(host, port, "GET", "/chunked")[2] == whole
        # An empty chunked body is a 0-byte blob.
        r = procs.raw_request(host, port, b"PUT /empty-chunked HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert r.status == 201, r
        status, hdrs, data = procs.http_request(host, port, "GET", "/empty-chunked")
        assert status == 200 and data == b"" and hdrs["content-length"] == "0"


def test_content_md5_and_bad_uploads():
    with procs.Procs() as p:
        root = p.path("root")
        d, host, port = start_storaged(p, root)
        c = Client(host, port)
        body = os.urandom(50000)
        good = base64.b64encode(hashlib.md5(body).digest()).decode()
        bad = base64.b64encode(hashlib.md5(body + b"!").digest()).decode()
        assert c.req("PUT", "/md5ok", body, {"Content-MD5": good})[0] == 201
        assert c.req("GET", "/md5ok")[2] == body
        status, _, data = c.req("PUT", "/md5bad", body, {"Content-MD5": bad})
        assert status == 400 and b"Content-MD5" in data, (status, data)
        c.close()
        # Malformed Content-MD5 is refused before the body is read.
        r = procs.raw_request(host, port, b"PUT /md5junk HTTP/1.1\r\nHost: x\r\n"
                              b"Content-MD5: nope\r\nContent-Length: 3\r\n\r\nabc")
        assert r.status == 400, r
        # Neither a length nor chunked: 411.
        r = procs.raw_request(host, port, b"PUT /nolen HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.status == 411 and r.headers["x-content-type-options"] == "nosniff", r
        # A coding list that does not end with chunked cannot be framed (RFC 9112 6.3): 400;
        # one that does but holds another coding: 501.
        r = procs.raw_request(host, port, b"PUT /gz HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: gzip\r\n\r\n")
        assert r.status == 400, r
        r = procs.raw_request(host, port, b"PUT /gz HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
        assert r.status == 501, r
        for name in ("md5bad", "md5junk", "nolen", "gz"):
            assert procs.http_request(host, port, "GET", "/" + name)[0] == 404, name
            assert blob_files(root, name) == [], name

        # Short body: the client goes away after half the bytes. Nothing becomes visible
        # and the temp file is removed.
        s = socket.create_connection((host, port))
        s.sendall(b"PUT /short HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" +
                  os.urandom(50000))
        procs.poll(lambda: tmp_entries(root), what="the temp file of the upload")
        s.close()
        d.wait_log(r"event=upload_aborted name=short received=50000 expected=100000")
        procs.poll(lambda: tmp_entries(root) == [], what="the temp file to be removed")
        assert procs.http_request(host, port, "GET", "/short")[0] == 404
        assert blob_files(root, "short") == []
        assert tmp_entries(root) == []


def test_ranges_and_conditionals():
    with procs.Procs() as p:
        root = p.path("root")
        d, host, port = start_storaged(p, root)
        c = Client(host, port)
        body = bytes(range(256)) * 4  # 1024 bytes
        assert c.req("PUT", "/r", body)[0] == 201
        assert c.req("PUT", "/zero", b"")[0] == 201

        def rng(spec, name="/r"):
            return c.req("GET", name, headers={"Range": spec})

        status, hdrs, data = rng("bytes=0-9")
        assert status == 206 and data == body[:10], (status, data)
        assert hdrs["content-range"] == "bytes 0-9/1024" and hdrs["content-length"] == "10"
        status, hdrs, data = rng("bytes=1000-")
        assert status == 206 and data == body[1000:] and hdrs["content-range"] == \
            "bytes 1000-1023/1024", hdrs
        status, hdrs, data = rng("bytes=-5")
        assert status == 206 and data == body[-5:] and hdrs["content-range"] == \
            "bytes 1019-1023/1024"
        status, hdrs, data = rng("bytes=1000-5000")
        assert status == 206 and data == body[1000:]
        status, hdrs, data = rng("bytes=1024-")
        assert status == 416 and hdrs["content-range"] == "bytes */1024", (status, hdrs)
        status, hdrs, data = rng("bytes=-0")
        assert status == 416
        status, hdrs, data = rng("bytes=0-", "/zero")
        assert status == 416 and hdrs["content-range"] == "bytes */0"
        # Several ranges: the whole blob, 200 (documented). Malformed: ignored, 200.
        for spec in ("bytes=0-1,5-6", "bytes=9-3", "items=0-1", "bytes=x-y"):
            status, hdrs, data = rng(spec)
            assert status == 200 and data == body, (spec, status)
        # HEAD with a range: 206 headers, no body.
        status, hdrs, data = c.req("HEAD", "/r", headers={"Range": "bytes=10-19"})
        assert status == 206 and data == b"" and hdrs["content-length"] == "10"

        lm = c.req("HEAD", "/r")[1]["last-modified"]
        status, hdrs, data = c.req("GET", "/r", headers={"If-Modified-Since": lm})
        assert status == 304 and data == b"" and hdrs["last-modified"] == lm, status
        status, _, data = c.req("GET", "/r",
                                headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
        assert status == 200 and data == body
        status, _, data = c.req("GET", "/r", headers={"If-Modified-Since": "yesterday"})
        assert status == 200 and data == body
        # If-Range with another date: the whole blob.
        status, _, data = c.req("GET", "/r", headers={
            "Range": "bytes=0-1", "If-Range": "Sat, 01 Jan 2000 00:00:00 GMT"})
        assert status == 200 and data == body
        status, _, data = c.req("GET", "/r", headers={"Range": "bytes=0-1", "If-Range": lm})
        assert status == 206 and data == body[:2]
        c.close()


def test_stats_health_and_misc():
    with procs.Procs() as p:
        root = p.path("root")
        d, host, port = start_storaged(p, root)
        c = Client(host, port)
        s0 = stats(c)
        assert s0["files"] == 0
        for i in range(5):
            assert c.req("PUT", "/f%d" % i, os.urandom(1000))[0] == 201
        assert stats(c)["files"] == 5
        assert c.req("DELETE", "/f0")[0] == 204
        assert c.req("DELETE", "/f1")[0] == 204
        assert c.req("DELETE", "/f1")[0] == 404
        assert stats(c)["files"] == 3

        status, hdrs, data = c.req("GET", "/_health")
        assert status == 200 and data == b"ok\n", (status, data)
        assert c.req("HEAD", "/_health")[0] == 200
        os.rename(os.path.join(root, ".stf-storage"), os.path.join(root, "marker.bak"))
        status, _, data = c.req("GET", "/_health")
        assert status == 503 and b".stf-storage" in data, (status, data)
        os.rename(os.path.join(root, "marker.bak"), os.path.join(root, ".stf-storage"))
        assert c.req("GET", "/_health")[0] == 200

        status, hdrs, _ = c.req("POST", "/f2", b"x")
        assert status == 405 and hdrs["allow"] == "GET, HEAD, PUT, DELETE", (status, hdrs)
        assert c.req("PUT", "/_stats", b"x")[0] == 405
        assert c.req("GET", "/_nothing")[0] == 404
        r = procs.raw_request(host, port, b"BREW /f2 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.status == 501, r
        c.close()


def test_file_count_under_concurrency():
    """PUT, overwrite and DELETE of the same few names from many threads at once: the
    count in /_stats must end equal to the files on disk."""
    import random
    import threading
    with procs.Procs() as p:
        root = p.path("root")
        d, host, port = start_storaged(p, root, "--threads", "4")
        names = ["n%d" % i for i in range(6)]
        errors = []

        def worker(seed):
            rnd = random.Random(seed)
            conn = http.client.HTTPConnection(host, port, timeout=30)
            try:
                for _ in range(60):
                    name = rnd.choice(names)
                    if rnd.random() < 0.6:
                        st, _, _ = procs.http_request(host, port, "PUT", "/" + name,
                                                      os.urandom(rnd.randrange(1, 3000)),
                                                      conn=conn)
                        ok = st == 201
                    else:
                        st, _, _ = procs.http_request(host, port, "DELETE", "/" + name,
                                                      conn=conn)
                        ok = st in (204, 404)
                    if not ok:
                        errors.append((name, st))
            finally:
                conn.close()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[:10]
        on_disk = sum(len(blob_files(root, n)) for n in names)
        c = Client(host, port)
        assert stats(c)["files"] == on_disk, (stats(c), on_disk)
        assert tmp_entries(root) == []
        c.close()


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
