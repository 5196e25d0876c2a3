"""test/integration/test_hostile_input.py — hostile input over raw sockets against a real system
(one cluster of three storaged, a dispatcher, repaird; PostgreSQL, Redis): malformed request
lines and header blocks, bad names (invalid UTF-8, control characters, dot segments, overlong),
Content-Length / Transfer-Encoding mismatches and overflows, absurd Range headers and MOVE
destinations, slow clients (slowloris, slow bodies), and bad config files and command lines for
every program. Each case gets its exact status (the dispatcher's own refusals a one-line reason),
nothing changes (rows, listings, files on every storage root), and every daemon keeps serving.

Not covered here (see test_storaged_paths.py, test_dispatcher_api.py, unit/test_config.c and
test/fuzz): storaged's request-target attacks, the API status table, the config parser's units."""
import functools
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402

MAX_OBJECT = 1 << 20  # max_object_size of the system under test
OBJ = b"/hb/o"        # an object every case may aim at; its content must never change
OBJ_BODY = b"the original version\n"


# --- helpers ------------------------------------------------------------------------------------
def raw(s, data, head=False, port=None, timeout=10.0, closed=True):
    """One request exactly as given on a fresh connection: (RawResponse or None, closed) where
    closed says whether the server closed the connection after its answer (None: not asked)."""
    with socket.create_connection((s.host, port or s.port), timeout=timeout) as c:
        c.sendall(data)
        r = procs.read_response(c, head)
        return r, connection_closed(c) if closed else None


def read_responses(c, n):
    """n pipelined responses from one connection (bytes of the next one kept between them)."""
    buf, out = b"", []
    while len(out) < n:
        r, rest = procs.parse_response(buf)
        if r is not None:
            out.append(r)
            buf = rest
            continue
        chunk = c.recv(65536)
        assert chunk, "closed after %d of %d responses" % (len(out), n)
        buf += chunk
    return out


def connection_closed(c, wait=0.3):
    c.settimeout(wait)
    try:
        return c.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def one_line(r):
    """The dispatcher's own refusal: a one-line text/plain reason with nosniff."""
    return (r.body.endswith(b"\n") and r.body.count(b"\n") == 1 and len(r.body) > 1 and
            r.headers.get("content-type", "").startswith("text/plain") and
            r.headers.get("x-content-type-options") == "nosniff")


def expect(s, data, status, reason=None, own=True, head=False, port=None):
    """Sends data; the answer must be status (and, for the dispatcher's own answers, a one-line
    reason containing `reason`). Returns the response."""
    r, _ = raw(s, data, head=head, port=port, closed=False)
    assert r is not None, "no answer to %r" % data[:120]
    assert r.status == status, (data[:120], r)
    if own and not head and status >= 400:
        assert one_line(r), (data[:120], r)
        assert reason is None or reason.encode() in r.body, (data[:120], reason, r.body)
    return r


def put_head(path, extra=b""):
    return b"PUT " + path + b" HTTP/1.1\r\nHost: t\r\n" + extra


def state(s):
    """Everything a refused request must leave alone: buckets, object rows, files on the roots."""
    buckets = s.sql("SELECT id, name, deleted_at IS NULL FROM buckets ORDER BY id")
    objects = s.sql("SELECT bucket_id, name, internal_name, size, etag FROM objects ORDER BY id")
    return buckets, objects, s.all_files()


def assert_unchanged(s, before, what, timeout=30.0):
    """Waits (bounded) for a refused upload's stray copies to be cleaned up, then compares."""
    def same():
        return state(s) == before
    try:
        de.wait_until(same, timeout=timeout, what="state unchanged after " + what)
    except AssertionError:
        after = state(s)
        raise AssertionError("%s changed the state:\nbefore %r\nafter  %r" %
                             (what, before[:2], after[:2]))
    st, _, body = s.req("GET", OBJ.decode())
    assert (st, body) == (200, OBJ_BODY), (what, st, body)


def assert_alive(s):
    dead = [d.name for d in s.p.daemons if not d.alive()]
    assert not dead, "dead daemons: %s" % dead
    assert s.req("GET", "/_health", timeout=5)[0] == 200
    for st in s.storages:
        assert procs.http_request("127.0.0.1", st.port, "GET", "/_health", timeout=5)[0] == 200


# --- request lines and header blocks ------------------------------------------------------------
def test_malformed_request_lines(s):
    before = state(s)
    # libmicrohttpd's own refusals: the status is exact, the body is its fixed HTML page
    mhd = [
        (b"GET /hb\r\n\r\n", 400),                                     # no HTTP version
        (b"GET /hb HTTP/9.9\r\nHost: t\r\n\r\n", 505),
        (b"GET /hb HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"GET /hb/" + b"a" * 100000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET /hb HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n", 400),
        (b"GET /hb HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n", 431),
        (b"GET /hb HTTP/1.1\r\nHost: t\r\n" +
         b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n", 431),
        (put_head(b"/hb/big", b"X-Big: " + b"b" * 100000 + b"\r\nContent-Length: 3\r\n\r\nabc"),
         431),
    ]
    for data, status in mhd:
        r, closed = raw(s, data)
        assert r is not None and r.status == status, (data[:80], r)
        assert closed, ("connection kept after", data[:80])
    # a request line without any space: libmicrohttpd 0.9.75 closes without an answer (or 400)
    for data in (b"garbage\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"):
        r, closed = raw(s, data)
        assert (r is None or r.status == 400) and closed, (data, r)
    # the dispatcher's own: bad method tokens, unknown methods, a name too long for SPEC §5
    expect(s, b"G<T /hb HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed request method")
    expect(s, b"G\x01T /hb/o HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed request method")
    expect(s, b"G\x7fT /hb/o HTTP/1.1\r\nHost: t\r\n\r\n", 400, "malformed request method")
    r = expect(s, b"FOOBARBAZ /hb/o HTTP/1.1\r\nHost: t\r\n\r\n", 405, "method not allowed")
    assert "PUT" in r.headers["allow"], r
    expect(s, b"A" * 5000 + b" /hb HTTP/1.1\r\nHost: t\r\n\r\n", 405, "method not allowed")
    expect(s, b"GET /hb/" + b"a" * 10000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 400,
           "longer than 1024 bytes")
    # a raw NUL byte in the target: libmicrohttpd would cut the name there (PUT /hb/x\0evil
    # would store /hb/x)
    expect(s, put_head(b"/hb/x\x00evil", b"Content-Length: 3\r\n\r\nabc"), 400,
           "NUL byte in request target")
    expect(s, b"GET /hb/o\x00x HTTP/1.1\r\nHost: t\r\n\r\n", 400, "NUL byte in request target")
    # HTTP/1.1 without Host (RFC 9112 3.2); HTTP/1.0 needs none
    expect(s, b"GET /hb/o HTTP/1.1\r\n\r\n", 400, "missing Host header")
    r = expect(s, b"GET /_health HTTP/1.0\r\n\r\n", 200)
    assert_unchanged(s, before, "malformed request lines")
    assert_alive(s)


# --- names -----------------------------------------------------------------------------------
BAD_OBJECT_NAMES = [
    b"%C3%28", b"%ED%A0%80", b"%C0%AF", b"%F4%90%80%80", b"a\xffb", b"a\xc3",  # not UTF-8
    b"a\x01b", b"a\x7fb", b"a%00b", b"a%0ab", b"a%0d%0aX-Injected:%201", b"a%1bb", b"a%7f",
    b"a%C2%85b", b"a\tb",                                                    # control characters
    b"..", b"a/../b", b"a/./b", b"%2e%2e", b"a/%2E%2E/b", b"x/..",          # dot segments
    b"x" * 1025, "\u20ac".encode() * 342,                                   # over 1024 bytes
]
BAD_BUCKET_NAMES = [b"", b"HB", b"h%C3%A9", b"h\x01b", b"h%00b", b"..", b".", b"_x", b"b" * 64,
                    b"h b"]


def test_bad_names_change_nothing(s):
    before = state(s)
    for name in BAD_OBJECT_NAMES:
        for method in (b"PUT", b"GET", b"HEAD", b"DELETE", b"POST", b"MOVE"):
            data = method + b" /hb/" + name + b" HTTP/1.1\r\nHost: t\r\n"
            if method == b"PUT":
                data += b"Content-Length: 4\r\n\r\nbody"
            elif method == b"MOVE":
                data += b"X-STF-Move-Destination: /hb/moved\r\n\r\n"
            else:
                data += b"\r\n"
            expect(s, data, 400, head=method == b"HEAD")
    for name in BAD_BUCKET_NAMES:
        for target in (b"/" + name, b"/" + name + b"/obj"):
            expect(s, put_head(target, b"Content-Length: 4\r\n\r\nbody"), 400)
            expect(s, b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n", 400)
    # "//x" has an empty bucket name; the destination of a bucket rename is checked the same way
    expect(s, put_head(b"//x", b"Content-Length: 4\r\n\r\nbody"), 400, "bucket name is empty")
    for dest in (b"/HB2", b"/h%00b", b"/..", b"/" + b"b" * 64, b"/h\x01b"):
        expect(s, b"MOVE /hb HTTP/1.1\r\nHost: t\r\nX-STF-Move-Destination: " + dest +
               b"\r\n\r\n", 400)
    assert_unchanged(s, before, "bad names")
    doc = s.req("GET", "/hb")[2]
    assert doc.count(b'"name"') == 1, doc  # still only "o"
    assert_alive(s)


# --- Content-Length, Transfer-Encoding and chunks ----------------------------------------------
def test_body_framing(s):
    before = state(s)
    cl = b"Content-Length: "
    te = b"Transfer-Encoding: "
    own = [
        (put_head(OBJ, cl + b"9999999999999999999\r\n\r\nx"), 413, "max_object_size"),
        (put_head(OBJ, cl + b"%d\r\n\r\nx" % (MAX_OBJECT + 1)), 413, "max_object_size"),
        (put_head(OBJ, cl + b"5\r\n" + cl + b"6\r\n\r\nhello!"), 400, "several Content-Length"),
        (put_head(OBJ, cl + b"5\r\n" + cl + b"5\r\n\r\nhello"), 400, "several Content-Length"),
        (put_head(OBJ, cl + b"3\r\n" + te + b"chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 400,
         "Content-Length and Transfer-Encoding"),
        (put_head(OBJ, te + b"chunked\r\n" + te + b"chunked\r\n\r\n0\r\n\r\n"), 400,
         "several Transfer-Encoding"),
        (put_head(OBJ, te + b"gzip\r\n\r\nhello"), 400, "does not end with chunked"),
        (put_head(OBJ, te + b"identity\r\n\r\nhello"), 400, "does not end with chunked"),
        (put_head(OBJ, te + b"\r\n\r\nhello"), 400, "does not end with chunked"),
        (put_head(OBJ, te + b"gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 501,
         "only the chunked"),
        (b"GET /hb/o HTTP/1.1\r\nHost: t\r\n" + te + b"gzip\r\n\r\n", 400, "does not end"),
        (b"DELETE /hb/o HTTP/1.1\r\nHost: t\r\n" + cl + b"1\r\n" + cl + b"2\r\n\r\nxy", 400,
         "several Content-Length"),
    ]
    for data, status, reason in own:
        r, closed = raw(s, data)
        assert r is not None and r.status == status and one_line(r), (data[:100], r)
        assert reason.encode() in r.body, (data[:100], r.body)
        assert closed, ("a framing error must close the connection", data[:100])
    mhd = [
        (put_head(OBJ, cl + b"-5\r\n\r\nhello"), 400),
        (put_head(OBJ, cl + b"abc\r\n\r\nhello"), 400),
        (put_head(OBJ, cl + b"+5\r\n\r\nhello"), 400),
        (put_head(OBJ, cl + b"5, 5\r\n\r\nhello"), 400),
        (put_head(OBJ, cl + b"99999999999999999999999\r\n\r\nhello"), 413),
        (put_head(OBJ, te + b"chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), 400),
        (put_head(OBJ, te + b"chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"), 400),
        (put_head(OBJ, te + b"chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"), 400),
        (put_head(OBJ, te + b"chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n"), 413),
    ]
    for data, status in mhd:
        r, closed = raw(s, data)
        assert r is not None and r.status == status and closed, (data[:100], r)
    # a body shorter than its Content-Length, or a chunk announced far beyond the limit, then
    # the client goes away: the old version stays, nothing is stored
    for data in (put_head(OBJ, cl + b"300000\r\n\r\n") + b"z" * 200000,
                 put_head(OBJ, te + b"chunked\r\n\r\nFFFFFFFFFFFF\r\n") + b"y" * 100000,
                 put_head(b"/hb/new", cl + b"10\r\n\r\nabc")):
        with socket.create_connection((s.host, s.port)) as c:
            c.sendall(data)
            time.sleep(0.2)
    assert_unchanged(s, before, "framing errors")
    assert_alive(s)


def test_body_longer_than_content_length(s):
    """The extra bytes are the next request on the connection: garbage there is refused and
    the first request alone is stored."""
    before = state(s)
    with socket.create_connection((s.host, s.port), timeout=10) as c:
        c.sendall(put_head(b"/hb/extra", b"Content-Length: 3\r\n\r\nabcGARBAGE\r\n\r\n"))
        r = procs.read_response(c)
        assert r.status == 201 and r.headers["etag"] == '"%s"' % de.md5hex(b"abc"), r
        second = procs.read_response(c)
        assert second is None or second.status == 400, second
    # the next request may be a valid one: it is answered as such
    with socket.create_connection((s.host, s.port), timeout=10) as c:
        c.sendall(put_head(b"/hb/extra", b"Content-Length: 3\r\n\r\nxyzGET /hb/extra HTTP/1.1"
                           b"\r\nHost: t\r\n\r\n"))
        put, get = read_responses(c, 2)
        assert put.status == 201, put
        assert (get.status, get.body) == (200, b"xyz"), get
    assert s.req("DELETE", "/hb/extra")[0] == 204
    de.wait_settled(s)
    assert_unchanged(s, before, "a body longer than Content-Length")


# --- Range ----------------------------------------------------------------------------------
def test_absurd_ranges(s):
    data = bytes(range(100))
    assert s.put("/hb/r", data)[0] == 201
    # RFC 9110 §14.2: a Range the server does not understand is ignored; numbers of more than
    # 19 digits are not understood (common/range.c), so even "0-<huge>" is served whole
    whole = ["bytes=-5-3", "bytes=50-10", "bytes=0-99999999999999999999999",
             "bytes=99999999999999999999999-", "bytes=-99999999999999999999999",
             "bytes=18446744073709551616-", "bytes=abc", "bytes=", "bytes", "pages=0-1",
             "bytes=0-1;x", "bytes=1-2-3", "bytes=\x01"]
    for rng in whole:
        for method in ("GET", "HEAD"):
            st, h, body = s.req(method, "/hb/r", headers={"Range": rng})
            assert st == 200 and h["content-length"] == "100", (rng, method, st, h)
            assert method == "HEAD" or body == data, (rng, len(body))
    for rng in ("bytes=100-", "bytes=-0", "bytes=9223372036854775807-"):
        st, h, body = s.req("GET", "/hb/r", headers={"Range": rng})
        assert st == 416 and h["content-range"] == "bytes */100", (rng, st, h)
    st, h, body = s.req("GET", "/hb/r", headers={"Range": "bytes = 5-9 "})
    assert (st, body, h["content-range"]) == (206, data[5:10], "bytes 5-9/100"), (st, h)
    st, h, body = s.req("GET", "/hb/r", headers={"Range": "bytes=95-1000000"})
    assert (st, body, h["content-range"]) == (206, data[95:], "bytes 95-99/100"), (st, h)
    assert s.req("DELETE", "/hb/r")[0] == 204
    assert_alive(s)


# --- MOVE -----------------------------------------------------------------------------------
def test_absurd_move_destinations(s):
    de.wait_settled(s)
    before = state(s)
    jobs = len(s.jobs())
    dst = b"X-STF-Move-Destination: "
    cases = [
        (b"", 400, "X-STF-Move-Destination is missing"),
        (dst + b"\r\n", 400, "must be a path"),
        (dst + b"http://evil.example/hb/o2\r\n", 400, "names another host"),
        (dst + b"http://evil.example:8080\r\n", 400, "names another host"),
        (dst + b"http://t@evil.example/hb/o2\r\n", 400, "names another host"),
        (dst + b"/hb/o2\r\n" + dst + b"/hb/o3\r\n", 400, "several X-STF-Move-Destination"),
        (dst + b"/nob/o2\r\n", 404, "no such bucket"),
        (dst + b"/hb/o\r\n", 412, "destination exists"),
        (dst + b"/hb/../o2\r\n", 400, "'.' or '..'"),
        (dst + b"/hb/%2e%2e/o2\r\n", 400, "'.' or '..'"),
        (dst + b"/hb/" + b"x" * 1025 + b"\r\n", 400, "longer than 1024"),
        (dst + b"/hb/a\x01b\r\n", 400, "control characters"),
        (dst + b"/hb/a%0ab\r\n", 400, "control characters"),
        (dst + b"/hb/a%00b\r\n", 400, "control characters"),
        (dst + b"/hb/a%ffb\r\n", 400, "not valid UTF-8"),
        (dst + b"/hb\r\n", 400, "must name an object"),
        (dst + b"/\r\n", 400, "must name an object"),
        (dst + b"//o2\r\n", 400, "bucket name is empty"),
        (dst + b"hb/o2\r\n", 400, "must be a path"),
        (dst + b"/HB/o2\r\n", 400, "bucket name may only hold"),
    ]
    for header, status, reason in cases:
        expect(s, b"MOVE /hb/o HTTP/1.1\r\nHost: t\r\n" + header + b"\r\n", status, reason)
    # onto itself with X-STF-Overwrite: nothing to do, nothing is deleted
    assert s.req("MOVE", "/hb/o", headers={"X-STF-Move-Destination": "/hb/o",
                                           "X-STF-Overwrite": "T"})[0] == 201
    # the same host (any port) is this store: an absolute URL there is a plain rename
    host = "127.0.0.1:%d" % s.port
    assert s.req("MOVE", "/hb/o", headers={
        "X-STF-Move-Destination": "http://127.0.0.1:1/hb/o2", "Host": host})[0] == 201
    assert s.req("MOVE", "/hb/o2", headers={"X-STF-Move-Destination": "/hb/o"})[0] == 201
    # bucket renames
    for header, status, reason in [
            (dst + b"/hb\r\n", 409, "destination bucket exists"),
            (dst + b"http://evil.example/hb2\r\n", 400, "names another host"),
            (dst + b"/hb2/o\r\n", 400, "must name a bucket only"),
            (b"", 400, "missing")]:
        expect(s, b"MOVE /hb HTTP/1.1\r\nHost: t\r\n" + header + b"\r\n", status, reason)
    b, o, files = state(s)
    assert (b, files) == (before[0], before[2]), "a refused MOVE changed buckets or files"
    assert sorted(o) == sorted(before[1]), "a refused MOVE changed object rows"
    assert len(s.jobs()) == jobs, "a refused MOVE queued work"
    assert_alive(s)


# --- slow clients -----------------------------------------------------------------------------
def test_slowloris_does_not_block_others(s):
    """50 clients send one header byte a second, one client sends its body a byte a second;
    meanwhile PUT and GET from another client complete promptly (each round < 2 s)."""
    before = state(s)
    slow = []
    for _ in range(50):
        c = socket.create_connection((s.host, s.port), timeout=10)
        c.sendall(b"GET /hb/o HTTP/1.1\r\nHost: t\r\n")
        slow.append(c)
    body = socket.create_connection((s.host, s.port), timeout=10)
    body.sendall(put_head(b"/hb/slow", b"Content-Length: 1000\r\n\r\nab"))
    stop = threading.Event()

    def drip():
        while not stop.wait(1.0):
            for c in slow + [body]:
                try:
                    c.sendall(b"X")
                except OSError:
                    pass
    t = threading.Thread(target=drip)
    t.start()
    try:
        time.sleep(1.5)
        rounds = []
        for i in range(10):
            t0 = time.monotonic()
            assert s.put("/hb/fast%d" % i, b"fast %d" % i)[0] == 201
            st, _, got = s.req("GET", "/hb/fast%d" % i, timeout=5)
            assert (st, got) == (200, b"fast %d" % i)
            rounds.append(time.monotonic() - t0)
        assert max(rounds) < 2.0, rounds
    finally:
        stop.set()
        t.join()
        for c in slow + [body]:
            c.close()
    for i in range(10):
        assert s.req("DELETE", "/hb/fast%d" % i)[0] == 204
    de.wait_settled(s)
    assert_unchanged(s, before, "slow clients")  # the slow body stored nothing
    assert_alive(s)


# --- storaged -----------------------------------------------------------------------------------
def test_storaged_framing(s):
    """storaged's answers to a framing it cannot take (its request targets: test_storaged_paths)."""
    st = s.storages[0]
    name = b"/0123456789abcdef0123456789abcdef"
    before = state(s)
    for data, status in [
            (b"FOOBARBAZ " + name + b" HTTP/1.1\r\nHost: t\r\n\r\n", 501),
            (put_head(name, b"Transfer-Encoding: gzip\r\n\r\nhello"), 400),
            (put_head(name, b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501),
            (put_head(name, b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), 400),
            (put_head(name, b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n0\r\n\r\n"), 400),
            (put_head(name, b"\r\n"), 411),
            (put_head(name, b"Content-Length: 99999999999999999999999\r\n\r\nx"), 413),
            (put_head(name, b"Content-Length: -1\r\n\r\nx"), 400),
            (b"GET /_health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n", 431)]:
        r, _ = raw(s, data, port=st.port, closed=False)
        assert r is not None and r.status == status, (data[:80], r)
    with socket.create_connection(("127.0.0.1", st.port)) as c:
        c.sendall(put_head(name, b"Content-Length: 100000\r\n\r\n") + b"q" * 5000)
        time.sleep(0.2)
    de.wait_until(lambda: os.listdir(os.path.join(st.root, ".tmp")) == [],
                  what="storaged to drop the half-written upload")
    assert_unchanged(s, before, "storaged framing")
    assert_alive(s)


# --- config files and command lines -------------------------------------------------------------
PROGRAMS = {"dispatcher": ("dispatcher", "dispatcher"), "storaged": ("storaged", "storaged"),
            "repaird": ("repaird", "repaird"), "clusterctl": ("clusterctl", "clusterctl")}


def run_program(s, prog, args, command=False, env=None):
    """(exit code, stderr) of a program run with args (storaged with a --root first; clusterctl
    with the status command after them when command is set), with env added to the
    environment."""
    argv = [procs.build_path(*PROGRAMS[prog])]
    if prog == "storaged":
        argv += ["--root", s.p.path("cfg-root")]
    argv += args
    if prog == "clusterctl" and command:
        argv += ["status"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL, errors="replace",
                       env=dict(os.environ, **(env or {})))
    return r.returncode, r.stderr


def test_bad_config_files(s):
    d = s.p.path("bad-conf")
    os.makedirs(d, exist_ok=True)
    good = open(s.conf).read()
    # name: (text, the bad line, what the message must name)
    files = {
        "unknown.conf": (good.replace("[dispatcher]\n", "[dispatcher]\nbogus_key = 1\n"),
                         "bogus_key = 1", "bogus_key"),
        "badvalue.conf": (good.replace("threads = 4", "threads = 0"), "threads = 0",
                          "dispatcher.threads"),
        "badsize.conf": (good.replace("max_object_size = 1M", "max_object_size = -5G"),
                         "max_object_size = -5G", "dispatcher.max_object_size"),
        "overflow.conf": (good.replace("max_bytes_per_sec = 0",
                                       "max_bytes_per_sec = 99999999999999999999999G"),
                          "max_bytes_per_sec = 9", "repaird.max_bytes_per_sec"),
        "noequals.conf": ("[dispatcher]\nlisten\n", "listen", "'='"),
    }
    lines = {}
    for name, (text, bad, _) in files.items():
        assert bad in text, name
        lines[name] = text.count("\n", 0, text.index(bad)) + 1
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    with open(os.path.join(d, "binary.conf"), "wb") as f:
        f.write(b"[dispatcher]\n" + bytes(range(1, 256)))
    for prog in PROGRAMS:
        for name, (_, _, key) in files.items():
            path = os.path.join(d, name)
            rc, err = run_program(s, prog, ["-c", path], command=True)
            assert rc == 1, (prog, name, rc, err)
            assert err.count("\n") == 1, (prog, name, err)
            assert "%s:%d:" % (path, lines[name]) in err and key in err, (prog, name, err)
        for path, what in [(os.path.join(d, "binary.conf"), ":2: control character 0x01"),
                           (os.path.join(d, "missing.conf"), "No such file"),
                           (d, "Is a directory")]:
            rc, err = run_program(s, prog, ["-c", path], command=True)
            assert rc == 1 and err.count("\n") == 1, (prog, path, rc, err)
            assert path in err and what in err, (prog, path, err)


def test_bad_command_lines(s):
    conf = ["-c", s.conf]
    common = [(["--bogus"], "unknown option '--bogus'"),
              (["-x"], "unknown option '-x'"),
              (["--log-level"], "needs"),
              (["--log-level", "loud"], "bad --log-level 'loud'"),
              (["--threads", "0"], "--threads")]
    listen = [(["--listen", "garbage"], "'garbage'"),
              (["--listen", "127.0.0.1:99999"], "'127.0.0.1:99999'"),
              (["--listen", "127.0.0.1:-1"], "'127.0.0.1:-1'"),
              (["--listen", "[::1"], "'[::1'"),
              (["--listen"], "needs")]
    for prog in PROGRAMS:
        cases = common + (listen if prog in ("dispatcher", "storaged") else [])
        if prog != "clusterctl":
            cases = cases + [(["extra"], "unexpected argument 'extra'")]
        for args, what in cases:
            rc, err = run_program(s, prog, conf + args)
            assert rc == 2, (prog, args, rc, err)
            assert err.count("\n") == 1 and err.startswith(prog + ": "), (prog, args, err)
            assert what in err, (prog, args, what, err)
    # the tuning knobs of the environment are checked as strictly as the config file
    for prog, var, value in [("dispatcher", "STF_DISPATCHER_PUT_GUARD", "0.5s"),
                             ("dispatcher", "STF_DISPATCHER_PUT_GUARD", "soon"),
                             ("repaird", "STF_REPAIRD_LEASE", "500ms"),
                             ("repaird", "STF_REPAIRD_SCRUB_PASS", "-1s")]:
        rc, err = run_program(s, prog, conf, env={var: value})
        assert rc == 1 and err.count("\n") == 1, (prog, var, value, rc, err)
        assert err.startswith("%s: bad %s '%s'" % (prog, var, value)), (prog, var, err)


# --- afterwards -----------------------------------------------------------------------------
def test_nothing_left_behind(s):
    """Every daemon still runs, and once the background work is done the storage roots hold
    exactly the live objects' files (no copy of a refused or cut upload, no temp file)."""
    assert_alive(s)
    de.wait_settled(s, timeout=60)
    want = {n for n, in s.sql("SELECT internal_name FROM objects")}
    for st in s.storages:
        assert set(st.files()) == want, (st.name, sorted(st.files()), sorted(want))
        assert os.listdir(os.path.join(st.root, ".tmp")) == [], st.name


def main():
    with procs.Procs() as p:
        s = de.System(p, clusters=1, conf={"max_object_size": "1M"})
        s.start_repaird()
        assert s.req("PUT", "/hb")[0] == 201
        assert s.put(OBJ.decode(), OBJ_BODY)[0] == 201
        tests = {n: functools.partial(f, s) for n, f in globals().items() if n.startswith("test_")}
        failed = procs.run_tests(tests)
        if failed:
            p.dump_logs()
    return failed


if __name__ == "__main__":
    sys.exit(main())
