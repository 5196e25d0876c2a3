"""test/integration/test_dispatcher_api.py — the dispatcher's HTTP API (SPEC §5) against a real
system: two clusters of three storaged, PostgreSQL, Redis. Every status of the table, the
headers (ETag, Content-Type, Last-Modified, nosniff), ranges and conditionals, listings, name
rules, and that refused uploads store nothing (no row, no file)."""
import base64
import hashlib
import json
import os
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402


def md5b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def no_files_named(s, names):
    files = s.all_files()
    for st, fs in files.items():
        for n in names:
            assert n not in fs, "%s still on %s" % (n, st)


def total_files(s):
    return sum(len(fs) for fs in s.all_files().values())


def test_buckets(s):
    st, h, _ = s.req("PUT", "/photos")
    assert st == 201, st
    assert h["x-content-type-options"] == "nosniff"
    assert s.req("PUT", "/photos")[0] == 204
    assert s.req("HEAD", "/photos")[0] == 200
    assert s.req("HEAD", "/nothere")[0] == 404
    # rename: 201; missing 404; destination exists 409
    assert s.req("PUT", "/other")[0] == 201
    assert s.req("MOVE", "/photos", headers={"X-STF-Move-Destination": "/other"})[0] == 409
    assert s.req("MOVE", "/nothere", headers={"X-STF-Move-Destination": "/x1"})[0] == 404
    assert s.req("MOVE", "/photos", headers={"X-STF-Move-Destination": "/Bad"})[0] == 400
    assert s.put("/photos/a.jpg", b"jpeg")[0] == 201
    assert s.req("MOVE", "/photos", headers={"X-STF-Move-Destination": "/pics"})[0] == 201
    assert s.req("HEAD", "/photos")[0] == 404
    st, _, body = s.req("GET", "/pics/a.jpg")
    assert (st, body) == (200, b"jpeg"), (st, body)
    # delete: 204, then its objects are gone for clients at once; missing: 404
    st, _, _ = s.req("DELETE", "/pics")
    assert st == 204
    assert s.req("DELETE", "/pics")[0] == 404
    assert s.req("GET", "/pics/a.jpg")[0] == 404
    assert s.jobs("delete_bucket"), "no delete_bucket job recorded"
    # a bucket of the same name can be created again, empty
    assert s.req("PUT", "/pics")[0] == 201
    assert s.req("GET", "/pics/a.jpg")[0] == 404


def test_object_roundtrip_and_headers(s):
    s.req("PUT", "/b1")
    data = os.urandom(100000)
    st, h, _ = s.put("/b1/dir/sub/photo.jpg", data, {"Content-Type": "image/jpeg"})
    assert st == 201, st
    assert h["etag"] == '"%s"' % hashlib.md5(data).hexdigest(), h
    st, h, body = s.req("GET", "/b1/dir/sub/photo.jpg")
    assert st == 200 and body == data
    assert h["content-type"] == "image/jpeg"
    assert h["etag"] == '"%s"' % hashlib.md5(data).hexdigest()
    assert h["content-length"] == str(len(data))
    assert "last-modified" in h and h["x-content-type-options"] == "nosniff"
    st, h2, body = s.req("HEAD", "/b1/dir/sub/photo.jpg")
    assert st == 200 and body == b"" and h2["content-length"] == str(len(data)), h2
    assert h2["etag"] == h["etag"] and h2["last-modified"] == h["last-modified"]
    # request ids: the client's is kept (and passed on to the storages), else one is made
    st, h3, _ = s.req("GET", "/b1/dir/sub/photo.jpg", headers={"X-Request-Id": "trace-42"})
    assert st == 200 and h3["x-request-id"] == "trace-42", h3
    assert len(h["x-request-id"]) == 16 and h["x-request-id"] != h2["x-request-id"], (h, h2)
    # default content type
    s.put("/b1/plain", b"x")
    assert s.req("GET", "/b1/plain")[1]["content-type"] == "application/octet-stream"
    # UTF-8 names, percent-encoded on the wire
    st, _, _ = s.put("/b1/%C3%A9t%C3%A9/%E2%82%AC%20x.txt", b"utf8")
    assert st == 201
    row = s.object_row("b1", "\u00e9t\u00e9/\u20ac x.txt")
    assert row is not None and row[2] == 4, row
    assert s.req("GET", "/b1/%C3%A9t%C3%A9/%E2%82%AC%20x.txt")[2] == b"utf8"


def test_overwrite_and_if_none_match(s):
    s.req("PUT", "/b2")
    assert s.put("/b2/o", b"version one")[0] == 201
    old = s.object_row("b2", "o")
    assert s.put("/b2/o", b"version two!")[0] == 201
    new = s.object_row("b2", "o")
    assert new[0] != old[0], "an overwrite must use a fresh internal name"
    assert s.req("GET", "/b2/o")[2] == b"version two!"
    jobs = [json.loads(j[3]) for j in s.jobs("delete_files")]
    assert {"cluster_id": int(s.sql_one("SELECT id FROM clusters WHERE name = '%s'" % old[1])),
            "internal_name": old[0]} in jobs, jobs
    # If-None-Match: * refuses an existing object, stores a new one
    st, _, _ = s.put("/b2/o", b"three", {"If-None-Match": "*"})
    assert st == 412
    assert s.req("GET", "/b2/o")[2] == b"version two!"
    assert s.put("/b2/new", b"n", {"If-None-Match": "*"})[0] == 201


def test_zero_length_and_chunked(s):
    s.req("PUT", "/b3")
    st, h, _ = s.put("/b3/empty", b"")
    assert st == 201 and h["etag"] == '"d41d8cd98f00b204e9800998ecf8427e"', (st, h)
    st, h, body = s.req("GET", "/b3/empty")
    assert (st, body, h["content-length"]) == (200, b"", "0")
    internal = s.object_row("b3", "empty")[0]
    holders = [n for n, fs in s.all_files().items() if fs.get(internal) == b""]
    assert len(holders) == 3, holders
    # chunked, small and large (spooled to disk), with chunk sizes that do not line up
    for name, size in (("small", 11), ("large", 3 * 1024 * 1024 + 7)):
        data = os.urandom(size)
        body = b""
        pos, step = 0, 1
        while pos < len(data):
            piece = data[pos:pos + step]
            body += b"%x\r\n%s\r\n" % (len(piece), piece)
            pos += len(piece)
            step = step * 7 + 3
        body += b"0\r\n\r\n"
        r = procs.raw_request(s.host, s.port, b"PUT /b3/%s HTTP/1.1\r\nHost: t\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n" % name.encode() + body)
        assert r is not None and r.status == 201, r
        assert r.headers["etag"] == '"%s"' % hashlib.md5(data).hexdigest()
        st, _, got = s.req("GET", "/b3/" + name)
        assert st == 200 and got == data, (st, len(got))


def test_ranges_and_conditionals(s):
    s.req("PUT", "/b4")
    data = bytes(range(256)) * 40
    _, h, _ = s.put("/b4/r", data)
    etag = h["etag"]
    st, h, body = s.req("GET", "/b4/r", headers={"Range": "bytes=10-19"})
    assert st == 206 and body == data[10:20], (st, body)
    assert h["content-range"] == "bytes 10-19/%d" % len(data)
    st, h, body = s.req("GET", "/b4/r", headers={"Range": "bytes=-5"})
    assert st == 206 and body == data[-5:]
    st, h, body = s.req("GET", "/b4/r", headers={"Range": "bytes=10000-"})
    assert st == 206 and body == data[10000:]
    st, h, _ = s.req("GET", "/b4/r", headers={"Range": "bytes=20000-"})
    assert st == 416 and h["content-range"] == "bytes */%d" % len(data), (st, h)
    st, _, body = s.req("GET", "/b4/r", headers={"Range": "bytes=0-1,5-6"})
    assert st == 200 and body == data  # several ranges: the whole object
    st, _, body = s.req("GET", "/b4/r", headers={"Range": "bytes=0-3", "If-Range": '"stale"'})
    assert st == 200 and body == data
    st, _, body = s.req("GET", "/b4/r", headers={"Range": "bytes=0-3", "If-Range": etag})
    assert st == 206 and body == data[:4]
    # conditionals
    st, h, body = s.req("GET", "/b4/r", headers={"If-None-Match": etag})
    assert st == 304 and body == b"" and h["etag"] == etag, st
    assert s.req("GET", "/b4/r", headers={"If-None-Match": '"x", ' + etag})[0] == 304
    assert s.req("GET", "/b4/r", headers={"If-None-Match": '"other"'})[0] == 200
    assert s.req("HEAD", "/b4/r", headers={"If-None-Match": "*"})[0] == 304
    lm = s.req("HEAD", "/b4/r")[1]["last-modified"]
    assert s.req("GET", "/b4/r", headers={"If-Modified-Since": lm})[0] == 304
    assert s.req("GET", "/b4/r", headers={"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}
                 )[0] == 200
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3600))
    assert s.req("GET", "/b4/r", headers={"If-Modified-Since": future})[0] == 304
    # an empty object has no satisfiable range
    s.put("/b4/e", b"")
    assert s.req("GET", "/b4/e", headers={"Range": "bytes=0-0"})[0] == 416


def test_delete_move_post(s):
    s.req("PUT", "/b5")
    s.req("PUT", "/b6")
    s.put("/b5/a", b"aaa")
    s.put("/b5/b", b"bbb")
    assert s.req("DELETE", "/b5/a")[0] == 204
    assert s.req("DELETE", "/b5/a")[0] == 404
    assert s.req("GET", "/b5/a")[0] == 404
    assert s.req("DELETE", "/nob/a")[0] == 404
    # MOVE: 201 without copying bytes; destination exists 412 unless X-STF-Overwrite: T
    row = s.object_row("b5", "b")
    assert s.req("MOVE", "/b5/b", headers={"X-STF-Move-Destination": "/b6/c"})[0] == 201
    assert s.req("GET", "/b5/b")[0] == 404
    assert s.req("GET", "/b6/c")[2] == b"bbb"
    assert s.object_row("b6", "c")[0] == row[0], "a move must not copy bytes"
    s.put("/b6/d", b"ddd")
    d_row = s.object_row("b6", "d")
    assert s.req("MOVE", "/b6/c", headers={"X-STF-Move-Destination": "/b6/d"})[0] == 412
    assert s.req("MOVE", "/b6/c", headers={"X-STF-Move-Destination": "/b6/d",
                                           "X-STF-Overwrite": "T"})[0] == 201
    assert s.req("GET", "/b6/d")[2] == b"bbb"
    assert any(json.loads(j[3]).get("internal_name") == d_row[0]
               for j in s.jobs("delete_files")), "replaced destination not queued for deletion"
    assert s.req("MOVE", "/b6/zz", headers={"X-STF-Move-Destination": "/b6/y"})[0] == 404
    assert s.req("MOVE", "/b6/d", headers={"X-STF-Move-Destination": "/nob/y"})[0] == 404
    assert s.req("MOVE", "/b6/d", headers={"X-STF-Move-Destination": "/b6/../y"})[0] == 400
    assert s.req("MOVE", "/b6/d")[0] == 400
    # POST queues a check-and-repair
    before = len(s.jobs("repair_object"))
    assert s.req("POST", "/b6/d")[0] == 204
    assert len(s.jobs("repair_object")) == before + 1
    assert s.req("POST", "/b6/none")[0] == 404


def test_listing(s):
    s.req("PUT", "/lst")
    names = ["a/1", "a/2", "a/3", "a_b", "b/1", "\u00e9", "a%x"]
    for n in names:
        assert s.put("/lst/" + urllib.parse.quote(n, safe="/"), n.encode())[0] == 201
    st, h, body = s.req("GET", "/lst")
    assert st == 200 and h["content-type"] == "application/json"
    doc = json.loads(body)
    got = [o["name"] for o in doc["objects"]]
    assert got == sorted(names, key=lambda x: x.encode()), got
    assert doc["next"] is None
    o = doc["objects"][0]
    assert set(o) == {"name", "size", "etag", "last_modified"}, o
    assert o["size"] == len(o["name"].encode()) and len(o["etag"]) == 32
    doc = json.loads(s.req("GET", "/lst?prefix=a/&limit=2")[2])
    assert [x["name"] for x in doc["objects"]] == ["a/1", "a/2"] and doc["next"] == "a/2", doc
    doc = json.loads(s.req("GET", "/lst?prefix=a/&limit=2&after=a/2")[2])
    assert [x["name"] for x in doc["objects"]] == ["a/3"] and doc["next"] is None, doc
    # LIKE metacharacters are literal
    doc = json.loads(s.req("GET", "/lst?prefix=a_")[2])
    assert [x["name"] for x in doc["objects"]] == ["a_b"], doc
    doc = json.loads(s.req("GET", "/lst?prefix=a%25")[2])
    assert [x["name"] for x in doc["objects"]] == ["a%x"], doc
    assert s.req("GET", "/lst?limit=0")[0] == 400
    assert s.req("GET", "/lst?limit=10001")[0] == 400
    assert s.req("GET", "/lst?limit=abc")[0] == 400
    assert s.req("GET", "/lst?limit=10000")[0] == 200
    assert s.req("GET", "/nolist")[0] == 404


def test_bad_names_store_nothing(s):
    s.req("PUT", "/bn")
    before = total_files(s)
    for path in ["/bn/a/../b", "/bn/./x", "/bn/..", "/BN/x", "/_x/y", "/bn/a%00b",
                 "/bn/a%01b", "/bn/%FF", "/" + "b" * 64 + "/x", "/bn/" + "x" * 1025, "/"]:
        st, h, body = s.put(path, b"payload")
        assert st == 400, (path, st, body)
        assert body.endswith(b"\n") and body.count(b"\n") == 1, body
        assert h["x-content-type-options"] == "nosniff"
    assert s.put("/bn/" + "x" * 1024, b"ok")[0] == 201
    assert total_files(s) == before + 3
    assert s.req("GET", "/bn/a%00b")[0] == 400
    st, h, _ = s.req("PATCH", "/bn/x")
    assert st == 405 and "PUT" in h["allow"], (st, h)
    assert s.req("POST", "/bn")[0] == 405
    assert s.req("PUT", "/_health")[0] == 405


def test_refused_uploads_store_nothing(s):
    s.req("PUT", "/rf")
    before = total_files(s)
    # missing bucket
    assert s.put("/nob/x", b"data")[0] == 404
    # over max_object_size (4M here): with Content-Length at once, chunked at the end
    r = procs.raw_request(s.host, s.port, b"PUT /rf/big HTTP/1.1\r\nHost: t\r\n"
                          b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (5 << 20))
    assert r.status == 413, r
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b"y" * (1 << 20))
    r = procs.raw_request(s.host, s.port, b"PUT /rf/bigc HTTP/1.1\r\nHost: t\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 5 + b"0\r\n\r\n")
    assert r is not None and r.status == 413, r
    # Content-MD5 mismatch; malformed Content-MD5
    assert s.put("/rf/m", b"abc", {"Content-MD5": md5b64(b"abd")})[0] == 400
    assert s.put("/rf/m", b"abc", {"Content-MD5": "nope"})[0] == 400
    assert s.put("/rf/m", b"abc", {"Content-MD5": md5b64(b"abc")})[0] == 201
    # a body shorter than Content-Length
    with socket.create_connection((s.host, s.port)) as c:
        c.sendall(b"PUT /rf/short HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n" +
                  b"z" * 200000)
        time.sleep(0.2)
    de.wait_until(lambda: s.metrics().get(
        'stf_dispatcher_requests_total{method="PUT",status="other"}', 0) >= 1,
        what="the truncated upload to end")
    for name in ("big", "bigc", "short"):
        assert s.object_row("rf", name) is None, name
    # copies of refused uploads are removed right away (janitor) or never written
    de.wait_until(lambda: total_files(s) == before + 3, what="only the good object's copies",
                  timeout=15)


def test_health_and_metrics(s):
    st, h, body = s.req("GET", "/_health")
    assert st == 200 and body.startswith(b"ok"), body
    m = s.metrics()
    assert any(k.startswith("stf_dispatcher_requests_total{") for k in m), m
    assert 'stf_dispatcher_request_duration_seconds_bucket{method="GET",le="+Inf"}' in m
    for k in ("stf_dispatcher_bytes_in_total", "stf_dispatcher_bytes_out_total",
              "stf_dispatcher_cluster_fallbacks_total", "stf_dispatcher_failover_reads_total",
              'stf_jobs{state="pending"}'):
        assert k in m, k
    assert m["stf_dispatcher_bytes_in_total"] > 0


def test_keepalive(s):
    """Successful requests keep the connection (answered on the second handler call)."""
    import http.client
    s.req("PUT", "/ka")
    c = http.client.HTTPConnection(s.host, s.port, timeout=10)
    try:
        for i in range(5):
            c.request("PUT", "/ka/o%d" % i, body=b"x" * i)
            r = c.getresponse()
            r.read()
            assert r.status == 201 and r.getheader("Connection") is None
            c.request("GET", "/ka/o%d" % i)
            r = c.getresponse()
            assert r.read() == b"x" * i
        sock1 = c.sock
        c.request("GET", "/ka/o1")
        c.getresponse().read()
        assert c.sock is sock1
    finally:
        c.close()


def main():
    failed = 0
    with procs.Procs() as p:
        s = de.System(p, clusters=2, conf={"max_object_size": "4M"})
        for name, fn in list(globals().items()):
            if not name.startswith("test_"):
                continue
            t0 = time.monotonic()
            try:
                fn(s)
                print("ok   %s (%.2fs)" % (name, time.monotonic() - t0), flush=True)
            except Exception:
                failed += 1
                import traceback
                traceback.print_exc()
                print("FAIL %s" % name, flush=True)
        if failed:
            p.dump_logs()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
