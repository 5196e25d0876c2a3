#!/usr/bin/env python3
"""test/integration/test_storaged_crash.py — kill -9 in the middle of 100 concurrent uploads:
after a restart every visible blob is complete and exactly what a client sent, uploads that
were cut never appear, acknowledged ones all survive, and no temp file remains."""
import hashlib
import http.client
import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", "."), "test", "harness"))
import procs  # noqa: E402

STORAGED = procs.build_path("storaged", "storaged")
DONE, PARTIAL, STREAMING = 34, 33, 33  # 100 uploads at once


def content(name, size):
    """Deterministic, name-specific bytes: a visible file can be matched to its sender."""
    seed = hashlib.sha256(name.encode()).digest()
    block = hashlib.sha256(seed + b"block").digest() * 2048  # 64 KiB
    return (seed + block * (size // len(block) + 1))[:size]


def partial_size(i):
    """How much of its 1 MiB body partial upload i sends before the kill (distinct sizes)."""
    return 300001 + i * 1009


def walk_blobs(root):
    """name -> bytes of every file under the fan-out directories; fails on anything else
    (a stray file at the top, or a leftover in .tmp)."""
    blobs, stray = {}, []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for f in filenames:
            if rel == "." and f == ".stf-storage":
                continue
            parts = rel.split(os.sep)
            if len(parts) == 2 and all(len(x) == 2 for x in parts):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    assert f not in blobs, f
                    blobs[f] = fh.read()
            else:
                stray.append(os.path.join(rel, f))
    return blobs, stray


def test_kill9_during_100_concurrent_uploads():
    with procs.Procs() as p:
        root = p.path("disk")
        d = p.spawn("storaged", [STORAGED, "--init", "--root", root, "--listen", "127.0.0.1:0",
                                 "--threads", "4"])
        host, port = d.wait_listening()
        sent = {}        # name -> the bytes its client sent (or was sending)
        acked = set()    # names answered 201 before the kill
        errors = []
        lock = threading.Lock()
        partial_sent = threading.Semaphore(0)
        streaming_started = threading.Semaphore(0)
        killed = threading.Event()

        def done_upload(i):
            name = "done-%03d" % i
            body = content(name, 1000 + i * 7919)
            with lock:
                sent[name] = body
            try:
                status, hdrs, _ = procs.http_request(host, port, "PUT", "/" + name, body)
                if status == 201 and hdrs["etag"] == '"%s"' % hashlib.md5(body).hexdigest():
                    with lock:
                        acked.add(name)
                else:
                    errors.append((name, status, hdrs))
            except OSError as e:
                errors.append((name, repr(e)))

        def partial_upload(i):
            # Sends the headers and part of the body, then waits for the kill.
            name = "partial-%03d" % i
            body = content(name, 1024 * 1024)
            with lock:
                sent[name] = body
            s = socket.create_connection((host, port), timeout=30)
            try:
                s.sendall(b"PUT /%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" %
                          (name.encode(), len(body)) + body[:partial_size(i)])
                partial_sent.release()
                killed.wait(30)
            finally:
                s.close()

        def streaming_upload(i):
            # Streams 4 MiB as fast as it can: the kill lands before, during or after.
            name = "stream-%03d" % i
            body = content(name, 4 * 1024 * 1024)
            with lock:
                sent[name] = body
            conn = http.client.HTTPConnection(host, port, timeout=30)
            try:
                conn.putrequest("PUT", "/" + name)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders()
                streaming_started.release()
                for off in range(0, len(body), 65536):
                    conn.send(body[off:off + 65536])
                resp = conn.getresponse()
                resp.read()
                if resp.status == 201 and not killed.is_set():
                    with lock:
                        acked.add(name)
            except OSError:
                pass  # cut by the kill
            finally:
                conn.close()

        threads = [threading.Thread(target=partial_upload, args=(i,)) for i in range(PARTIAL)]
        threads += [threading.Thread(target=streaming_upload, args=(i,))
                    for i in range(STREAMING)]
        threads += [threading.Thread(target=done_upload, args=(i,)) for i in range(DONE)]
        for t in threads:
            t.start()
        try:
            for _ in range(PARTIAL):
                assert partial_sent.acquire(timeout=30), "partial uploads did not start"
            for _ in range(STREAMING):
                assert streaming_started.acquire(timeout=30), "streams did not start"
            for t in threads[PARTIAL + STREAMING:]:
                t.join(30)
            assert not errors, errors
            # All 34 complete uploads acknowledged, 33 cut in the middle (storaged has taken
            # in every partial body: its temp file has the partial size), the rest streaming.
            assert sum(n.startswith("done-") for n in acked) == DONE
            tmp = os.path.join(root, ".tmp")

            def partial_bodies_received():
                sizes = set()
                for f in os.listdir(tmp):
                    try:
                        sizes.add(os.stat(os.path.join(tmp, f)).st_size)
                    except FileNotFoundError:
                        pass
                return all(partial_size(i) in sizes for i in range(PARTIAL))
            procs.poll(partial_bodies_received, timeout=30,
                       what="storaged to receive every partial body")
            d.kill9()
            killed.set()
        finally:
            killed.set()
            for t in threads:
                t.join(30)
        assert not any(t.is_alive() for t in threads)

        leftovers = os.listdir(os.path.join(root, ".tmp"))
        assert len(leftovers) >= PARTIAL, leftovers  # the cut uploads left temp files

        # What a reader could see right after the crash: only complete, correct blobs.
        blobs, stray = walk_blobs(root)
        stray = [s for s in stray if not s.startswith(".tmp" + os.sep)]
        assert not stray, stray
        for name, data in blobs.items():
            assert name in sent and data == sent[name], (name, len(data), len(sent.get(name, b"")))
        assert not any(n.startswith("partial-") for n in blobs), sorted(blobs)
        assert acked <= set(blobs), sorted(acked - set(blobs))

        # Restart: the temp files are gone, the count matches the disk, reads are intact.
        d2 = p.spawn("storaged-restarted", [STORAGED, "--root", root, "--listen",
                                            "127.0.0.1:0"])
        host, port = d2.wait_listening()
        assert os.listdir(os.path.join(root, ".tmp")) == []
        assert "tmp_removed=%d" % len(leftovers) in d2.log_text(), d2.log_text()
        blobs2, stray2 = walk_blobs(root)
        assert not stray2, stray2
        assert blobs2 == blobs
        status, _, body = procs.http_request(host, port, "GET", "/_stats")
        assert status == 200 and json.loads(body)["files"] == len(blobs), body
        conn = http.client.HTTPConnection(host, port, timeout=30)
        for name, data in sorted(blobs.items()):
            status, _, got = procs.http_request(host, port, "GET", "/" + name, conn=conn)
            assert status == 200 and got == data, name
        for name in sent:
            if name not in blobs:
                assert procs.http_request(host, port, "GET", "/" + name, conn=conn)[0] == 404
        conn.close()
        sys.stdout.write("visible after kill -9: %d of %d (done %d, streaming %d), "
                         "temp files removed at restart: %d\n" %
                         (len(blobs), len(sent), DONE,
                          sum(n.startswith("stream-") for n in blobs), len(leftovers)))


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
