#!/usr/bin/env python3
"""test/integration/test_storaged_paths.py — strict request-target validation in storaged,
with raw sockets (no client normalises anything): '..', percent-encoded dots and slashes,
NUL and control characters (raw and encoded), absolute-form targets, overlong names. Every
attempt must be 400 and nothing may be read or written outside the root (checked on disk)."""
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", "."), "test", "harness"))
import procs  # noqa: E402

STORAGED = procs.build_path("storaged", "storaged")

SECRET = b"outside the root: never served, never overwritten\n"

# Request targets that must all be refused with 400.
ATTACKS = [
    b"/..",
    b"/../outside/secret",
    b"/../../../../etc/passwd",
    b"/%2e%2e/outside/secret",
    b"/%2E%2E%2Foutside%2Fsecret",
    b"/..%2foutside%2fsecret",
    b"/%2e%2e",
    b"/a/../b",
    b"/a/./b",
    b"/./secret",
    b"//etc/passwd",
    b"/abc/",
    b"/a/b",
    b"/.stf-storage",
    b"/.tmp",
    b"/.hidden",
    b"/abc%00def",
    b"/abc%00",
    b"/%00",
    b"/abc%0a",
    b"/abc%0d%0aX-Injected:%201",
    b"/abc%20def",
    b"/abc%2fdef",
    b"/abc\x00def",
    b"/abc\x01def",
    b"/abc\x7fdef",
    b"/abc\tdef",
    b"/abc\\..\\secret",
    b"/abc\xc3\xa9",
    b"/abc?x=%00",
    b"/abc?x=%0a",
    b"/abc?x=\x01",
    b"/" + b"a" * 129,
    b"/" + b"a" * 5000,
    b"http://127.0.0.1/abc",
    b"http://127.0.0.1/../outside/secret",
    b"abc",
    b"*",
    b"/abc;x",
    b"/abc:x",
    b"/",
]


def request_bytes(method, target, body=b"x"):
    head = method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if method == b"PUT":
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    return head + b"\r\n"


def snapshot(top):
    """Every file under top with its content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for f in filenames:
            path = os.path.join(dirpath, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, top)] = hashlib.md5(fh.read()).hexdigest()
    return out


def test_path_attacks_are_refused():
    with procs.Procs() as p:
        top = p.path("t")
        root = os.path.join(top, "root")
        outside = os.path.join(top, "outside")
        os.makedirs(outside)
        with open(os.path.join(outside, "secret"), "wb") as f:
            f.write(SECRET)
        d = p.spawn("storaged", [STORAGED, "--init", "--root", root, "--listen", "127.0.0.1:0"])
        host, port = d.wait_listening()
        before = snapshot(top)
        # A good blob next door, so that a target that collapses onto it would be noticed.
        r = procs.raw_request(host, port, request_bytes(b"PUT", b"/abc", b"good"))
        assert r.status == 201, r
        failures = []
        for target in ATTACKS:
            for method in (b"GET", b"HEAD", b"PUT", b"DELETE"):
                r = procs.raw_request(host, port, request_bytes(method, target),
                                      head_request=(method == b"HEAD"))
                if r is None or r.status != 400:
                    failures.append((method, target[:60], r))
                    continue
                if r.headers.get("x-content-type-options") != "nosniff":
                    failures.append((method, target[:60], "no nosniff", r))
                if method != b"HEAD" and (SECRET in r.body or not r.body.endswith(b"\n")
                                          or r.body.count(b"\n") != 1):
                    failures.append((method, target[:60], "body", r))
        assert not failures, "\n".join(repr(f) for f in failures)

        # Nothing changed outside the root; inside it only the one good blob appeared.
        after = snapshot(top)
        assert after.get("outside/secret") == before["outside/secret"]
        added = set(after) - set(before)
        assert len(added) == 1 and added.pop().endswith("/abc"), sorted(set(after) ^ set(before))
        assert os.listdir(os.path.join(root, ".tmp")) == []
        r = procs.raw_request(host, port, request_bytes(b"GET", b"/abc"))
        assert r.status == 200 and r.body == b"good", r
        # The refusals are logged as warnings with their reason.
        log = d.log_text()
        assert "event=bad_target" in log and "NUL byte in request target" in log, log[-2000:]
        assert d.alive()


def test_valid_names_are_accepted():
    with procs.Procs() as p:
        root = p.path("root")
        d = p.spawn("storaged", [STORAGED, "--init", "--root", root, "--listen", "127.0.0.1:0"])
        host, port = d.wait_listening()
        names = [b"a", b"A-b_c.d", b"x..y", b"z.", b"_under", b"a" * 128,
                 b"0123456789abcdef0123456789abcdef"]
        for n in names:
            target = b"/" + n
            if n == b"_under":  # "/_..." is the reserved namespace: 404, never a blob
                r = procs.raw_request(host, port, request_bytes(b"PUT", target))
                assert r.status == 404, r
                continue
            r = procs.raw_request(host, port, request_bytes(b"PUT", target, n))
            assert r.status == 201, (n, r)
            r = procs.raw_request(host, port, request_bytes(b"GET", target))
            assert r.status == 200 and r.body == n, (n, r)
            # The query string is ignored for blobs.
            r = procs.raw_request(host, port, request_bytes(b"GET", target + b"?v=1&x=%41"))
            assert r.status == 200 and r.body == n, (n, r)


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
