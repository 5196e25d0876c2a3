#!/usr/bin/env python3
"""test/integration/test_storaged_lifecycle.py — storaged's start and stop: the root marker
and --init (exit codes, one-line refusals, nothing written to a wrong root), removal of temp
leftovers and the file count at start, and SIGTERM finishing an upload in flight."""
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", "."), "test", "harness"))
import procs  # noqa: E402

STORAGED = procs.build_path("storaged", "storaged")


def run_once(args, timeout=10):
    """Runs storaged expecting it to exit by itself; returns (rc, stderr lines)."""
    cp = subprocess.run([STORAGED, *args], stdin=subprocess.DEVNULL, capture_output=True,
                        timeout=timeout)
    return cp.returncode, cp.stderr.decode("utf-8", "replace").splitlines()


def start(p, root, *extra, name="storaged"):
    d = p.spawn(name, [STORAGED, "--root", root, "--listen", "127.0.0.1:0", *extra])
    host, port = d.wait_listening()
    return d, host, port


def stats(host, port):
    status, _, body = procs.http_request(host, port, "GET", "/_stats")
    assert status == 200, status
    return json.loads(body)


def test_marker_and_init():
    with procs.Procs() as p:
        # No root at all, no --init: refused.
        root = p.path("disk")
        rc, err = run_once(["--root", root, "--listen", "127.0.0.1:0"])
        assert rc == 1 and len(err) == 1 and "event=refused" in err[0], (rc, err)
        assert not os.path.exists(root)

        # An empty directory (think: an unmounted mount point) without --init: refused,
        # and nothing is written into it.
        os.mkdir(root)
        rc, err = run_once(["--root", root, "--listen", "127.0.0.1:0"])
        assert rc == 1 and len(err) == 1, (rc, err)
        assert ".stf-storage" in err[0] and "--init" in err[0], err
        assert os.listdir(root) == []

        # --init creates the marker (and the root with its parents when missing).
        deep = p.path("a", "b", "disk")
        d, host, port = start(p, deep, "--init", name="init-deep")
        assert d.stop() == 0
        with open(os.path.join(deep, ".stf-storage")) as f:
            text = f.read()
        assert re.fullmatch(r"stf-storage 1\nid [0-9a-f]{32}\n", text), text

        d, host, port = start(p, root, "--init", name="init")
        assert "event=marker_created" in d.log_text()
        with open(os.path.join(root, ".stf-storage")) as f:
            marker = f.read()
        assert procs.http_request(host, port, "GET", "/_health")[0] == 200
        assert d.stop() == 0
        # Now it starts without --init; --init again is harmless (the marker is kept).
        d, host, port = start(p, root, name="plain")
        assert d.stop() == 0
        d, host, port = start(p, root, "--init", name="init-again")
        assert d.stop() == 0
        assert "event=marker_created" not in d.log_text()
        with open(os.path.join(root, ".stf-storage")) as f:
            assert f.read() == marker

        # A malformed marker is refused, with or without --init, and left alone.
        with open(os.path.join(root, ".stf-storage"), "w") as f:
            f.write("something else\n")
        for extra in ([], ["--init"]):
            rc, err = run_once(["--root", root, "--listen", "127.0.0.1:0", *extra])
            assert rc == 1 and len(err) == 1 and "malformed" in err[0], (extra, rc, err)
        with open(os.path.join(root, ".stf-storage")) as f:
            assert f.read() == "something else\n"

        # Usage errors exit 2; an address in use exits 1 with one line.
        rc, err = run_once(["--root", root, "--threads", "0"])
        assert rc == 2, (rc, err)
        with open(os.path.join(root, ".stf-storage"), "w") as f:
            f.write(marker)
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            rc, err = run_once(["--root", root, "--listen", "127.0.0.1:%d" %
                                busy.getsockname()[1]])
        refusals = [line for line in err if "event=refused" in line]
        assert rc == 1 and len(refusals) == 1 and "cannot listen" in refusals[0], (rc, err)


def test_temp_cleanup_and_file_count_at_start():
    with procs.Procs() as p:
        root = p.path("disk")
        d, host, port = start(p, root, "--init", "--threads", "3")
        for i in range(7):
            status, _, _ = procs.http_request(host, port, "PUT", "/blob%d" % i, b"%d" % i)
            assert status == 201
        assert "threads=3" in d.log_text()
        assert d.stop() == 0
        # Leftovers of a crash in .tmp, and files that are not blobs in the fan-out dirs.
        for i in range(5):
            with open(os.path.join(root, ".tmp", "put-1-%d" % i), "wb") as f:
                f.write(b"partial" * 1000)
        some = glob.glob(os.path.join(root, "*", "*", "blob0"))[0]
        with open(os.path.join(os.path.dirname(some), "not-here"), "wb") as f:
            f.write(b"wrong fan-out")  # a valid name in the wrong directory
        with open(os.path.join(os.path.dirname(some), ".hidden"), "wb") as f:
            f.write(b"not a blob name")
        d, host, port = start(p, root, name="restart")
        assert "tmp_removed=5" in d.log_text() and "files=7" in d.log_text(), d.log_text()
        assert os.listdir(os.path.join(root, ".tmp")) == []
        assert stats(host, port)["files"] == 7
        for i in range(7):
            status, _, body = procs.http_request(host, port, "GET", "/blob%d" % i)
            assert status == 200 and body == b"%d" % i


def test_sigterm_finishes_upload_in_flight():
    with procs.Procs() as p:
        root = p.path("disk")
        d, host, port = start(p, root, "--init")
        body = os.urandom(2 * 1024 * 1024)
        half = len(body) // 2
        # An idle keep-alive connection must not hold the shutdown up.
        idle = socket.create_connection((host, port))
        idle.sendall(b"GET /_health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert procs.read_response(idle).status == 200

        s = socket.create_connection((host, port), timeout=30)
        s.sendall(b"PUT /inflight HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" %
                  len(body) + body[:half])
        procs.poll(lambda: os.listdir(os.path.join(root, ".tmp")), what="the upload's temp file")
        d.signal(signal.SIGTERM)
        d.wait_log(r"event=stopping signal=15 in_flight=1")

        def refused():
            try:
                socket.create_connection((host, port), timeout=1).close()
                return False
            except ConnectionRefusedError:
                return True
        procs.poll(refused, what="the listening socket to close")
        assert d.alive(), "storaged exited with an upload in flight"
        s.sendall(body[half:])
        r = procs.read_response(s)
        s.close()
        assert r is not None and r.status == 201, r
        assert r.headers.get("connection", "").lower() == "close", r.headers
        assert d.wait_exit() == 0
        assert "event=stopped" in d.log_text()
        files = glob.glob(os.path.join(root, "*", "*", "inflight"))
        assert len(files) == 1
        with open(files[0], "rb") as f:
            assert f.read() == body
        idle.close()

        # A second SIGTERM while a client stalls forces the stop at once.
        d, host, port = start(p, root, name="second")
        s = socket.create_connection((host, port), timeout=30)
        s.sendall(b"PUT /stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        procs.poll(lambda: os.listdir(os.path.join(root, ".tmp")), what="the upload's temp file")
        d.signal(signal.SIGTERM)
        d.wait_log(r"event=stopping")
        d.signal(signal.SIGTERM)
        assert d.wait_exit() == 0
        assert "event=stop_forced" in d.log_text()
        s.close()
        assert glob.glob(os.path.join(root, "*", "*", "stalled")) == []
        assert os.listdir(os.path.join(root, ".tmp")) == []


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
