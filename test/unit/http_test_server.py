#!/usr/bin/env python3
# test/unit/http_test_server.py — a small HTTP/1.1 keep-alive server for test_http_client.c:
# prints "port N" once listening, exits when its stdin closes (or on SIGTERM).
"""Endpoints:
  GET /conns            number of TCP connections accepted so far
  GET /bytes/N          N bytes (byte i = i % 251), ETag "bytes-N", a fixed Last-Modified
  GET /slow/MS          waits MS ms, then 200 "slow"
  GET /status/CODE      answers CODE with the body "error body CODE"
  PUT /store/NAME       stores the body (Content-Length or chunked); checks Content-MD5 -> 400;
                        201 with ETag "<md5 hex>"
  GET|HEAD /store/NAME  the stored bytes, 404 when missing
  DELETE /store/NAME    204, or 404 when missing
"""
import base64
import hashlib
import http.server
import os
import signal
import sys
import threading
import time

STORE = {}
LOCK = threading.Lock()
CONNS = [0]
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


def pattern(n):
    block = bytes(i % 251 for i in range(251))
    return (block * (n // 251 + 1))[:n]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with LOCK:
            CONNS[0] += 1

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", headers=None, head=False):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self, head=False):
        parts = self.path.split("/")
        if self.path == "/conns":
            with LOCK:
                n = CONNS[0]
            return self.reply(200, str(n).encode(), head=head)
        if len(parts) == 3 and parts[1] == "bytes":
            n = int(parts[2])
            return self.reply(200, pattern(n), {"ETag": '"bytes-%d"' % n,
                                                "Last-Modified": LAST_MODIFIED,
                                                "Content-Type": "application/x-test"}, head)
        if len(parts) == 3 and parts[1] == "slow":
            time.sleep(int(parts[2]) / 1000.0)
            return self.reply(200, b"slow", head=head)
        if len(parts) == 3 and parts[1] == "status":
            code = int(parts[2])
            return self.reply(code, b"error body %d" % code, head=head)
        if len(parts) == 3 and parts[1] == "store":
            with LOCK:
                data = STORE.get(parts[2])
            if data is None:
                return self.reply(404, b"missing", head=head)
            return self.reply(200, data, {"ETag": '"%s"' % hashlib.md5(data).hexdigest()}, head)
        return self.reply(404, b"no route", head=head)

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_PUT(self):
        parts = self.path.split("/")
        body = self.read_body()
        if len(parts) != 3 or parts[1] != "store":
            return self.reply(404, b"no route")
        md5 = hashlib.md5(body)
        sent = self.headers.get("Content-MD5")
        if sent is not None and base64.b64decode(sent) != md5.digest():
            return self.reply(400, b"Content-MD5 mismatch")
        with LOCK:
            STORE[parts[2]] = body
        self.reply(201, b"", {"ETag": '"%s"' % md5.hexdigest()})

    def do_DELETE(self):
        parts = self.path.split("/")
        with LOCK:
            found = STORE.pop(parts[2], None) if len(parts) == 3 else None
        self.reply(204 if found is not None else 404)


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops parallel connects (1 s SYN retry)
    daemon_threads = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    def watch_stdin():
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    print("port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
