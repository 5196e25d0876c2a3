"""test/harness/procs.py — helpers for integration tests that run real daemons on loopback:
free ports, spawning with logs captured, polling for readiness, TERM-then-KILL, log dumps on
failure, small HTTP clients (http.client and raw sockets), and a tiny test runner.

Usage from a test script (Python 3 stdlib only):

    sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
    import procs

    def test_something():
        with procs.Procs() as p:
            d = p.spawn("storaged", [procs.build_path("storaged", "storaged"), "--init", ...])
            host, port = d.wait_listening()
            status, headers, body = procs.http_request(host, port, "GET", "/_health")
            assert status == 200, (status, body)

    if __name__ == "__main__":
        sys.exit(procs.run_tests(globals()))

Every process a Procs context spawns is stopped when the context ends (TERM, then KILL), also
on failure, and on failure the logs of all of them are printed.
"""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

DEFAULT_TIMEOUT = 10.0


def build_path(*parts):
    """A path inside the build dir (env STF_BUILD), e.g. build_path("storaged", "storaged")."""
    return os.path.join(os.environ.get("STF_BUILD", "build"), *parts)


def src_path(*parts):
    """A path inside the source tree (env STF_SRC)."""
    return os.path.join(os.environ.get("STF_SRC", "."), *parts)


def _pg_pidfile():
    return os.path.join(os.environ["SVC_PGDATA"], "postmaster.pid")


def pg_stop():
    """Stops with-services.sh's PostgreSQL at once (SIGQUIT to the postmaster: an immediate
    shutdown, connections die without a goodbye)."""
    with open(_pg_pidfile()) as f:
        os.kill(int(f.readline()), signal.SIGQUIT)
    poll(lambda: not os.path.exists(_pg_pidfile()), timeout=30, what="PostgreSQL to stop")


def pg_start():
    """Starts with-services.sh's PostgreSQL again: the same data dir, port and socket."""
    subprocess.run(["bash", "-c", '. "$0"; svc_pg_start "$1" "$2"',
                    src_path("scripts", "services.sh"), os.environ["SVC_TMPDIR"],
                    os.environ["PGPORT"]], check=True, timeout=60)


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago (prefer port 0 + the daemon's logged address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def poll(pred, timeout=DEFAULT_TIMEOUT, interval=0.02, what="condition"):
    """Calls pred() until it returns a true value (returned) or timeout seconds pass
    (AssertionError naming `what`). Never a fixed sleep: the loop ends as soon as it can."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Daemon:
    """One spawned process with stdout+stderr captured to log_path."""

    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc = None
        self.returncode = None

    def start(self):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                         start_new_session=True)
        finally:
            log.close()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_log(self, pattern, timeout=DEFAULT_TIMEOUT):
        """Waits for a regex to match the log; returns the match. Fails at once if the
        process exits without printing it."""
        rx = re.compile(pattern)

        def check():
            m = rx.search(self.log_text())
            if m:
                return m
            if not self.alive():
                m = rx.search(self.log_text())
                if m:
                    return m
                raise AssertionError("%s exited (rc=%s) before logging /%s/" %
                                     (self.name, self.proc.returncode, pattern))
            return None
        return poll(check, timeout, what="%s to log /%s/" % (self.name, pattern))

    def wait_listening(self, timeout=DEFAULT_TIMEOUT):
        """Waits for the daemon's `event=listening addr=HOST:PORT` line; returns (host, port)."""
        m = self.wait_log(r"event=listening addr=(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)", timeout)
        return m.group(1).strip("[]"), int(m.group(2))

    def wait_http(self, host, port, path="/", timeout=DEFAULT_TIMEOUT):
        """Waits until host:port answers an HTTP request on path with any status."""
        def check():
            if not self.alive():
                raise AssertionError("%s exited (rc=%s) while waiting for HTTP" %
                                     (self.name, self.proc.returncode))
            try:
                status, _, _ = http_request(host, port, "GET", path, timeout=1.0)
                return status
            except OSError:
                return None
        return poll(check, timeout, what="%s to answer http://%s:%d%s" %
                    (self.name, host, port, path))

    def wait_exit(self, timeout=DEFAULT_TIMEOUT):
        """Waits for the process to exit by itself; returns its exit code."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s did not exit within %.1fs" % (self.name, timeout))
        return self.returncode

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill9(self):
        """SIGKILL, then reap; returns the exit code (-9)."""
        if self.alive():
            self.proc.kill()
        self.returncode = self.proc.wait()
        return self.returncode

    def stop(self, timeout=DEFAULT_TIMEOUT):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                sys.stderr.write("%s ignored SIGTERM for %.1fs: SIGKILL\n" % (self.name, timeout))
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode

    def dump_log(self, out=sys.stderr, max_lines=200):
        lines = self.log_text().splitlines()
        out.write("----- %s log (%s, %d lines%s) -----\n" %
                  (self.name, self.log_path, len(lines),
                   ", last %d" % max_lines if len(lines) > max_lines else ""))
        for line in lines[-max_lines:]:
            out.write(line + "\n")
        out.write("----- end of %s log -----\n" % self.name)


class Procs:
    """A context that owns a temp dir and every daemon spawned through it: all are stopped
    when it ends (TERM then KILL); on an exception their logs are printed first."""

    def __init__(self, prefix="stf-test-", check_clean_exit=True):
        """check_clean_exit: daemons still running at the end must exit 0 on SIGTERM (SPEC §3:
        a clean shutdown; under ASan this also catches leaks and errors reported at exit)."""
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.daemons = []
        self.check_clean_exit = check_clean_exit

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def spawn(self, name, argv, env=None, cwd=None):
        """Starts argv with its output in <dir>/<name>.log (appended to on restarts)."""
        d = Daemon(name, argv, self.path(name + ".log"), env=env, cwd=cwd)
        self.daemons.append(d)
        return d.start()

    def dump_logs(self, out=sys.stderr):
        for d in self.daemons:
            d.dump_log(out)

    def stop_all(self):
        """Stops every daemon still running; returns [(name, exit code)] of those."""
        stopped = []
        for d in reversed(self.daemons):
            try:
                if d.alive():
                    stopped.append((d.name, d.stop()))
            except Exception:  # keep stopping the others
                traceback.print_exc()
        return stopped

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        unclean = []
        try:
            stopped = self.stop_all()
            unclean = [(n, rc) for n, rc in stopped if rc != 0]
            if exc_type is not None or (unclean and self.check_clean_exit):
                self.dump_logs()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        if exc_type is None and unclean and self.check_clean_exit:
            raise AssertionError("not a clean exit on SIGTERM: %s" % unclean)
        return False


def http_request(host, port, method, path, body=None, headers=None, timeout=30.0, conn=None):
    """One request with http.client. Pass conn (an http.client.HTTPConnection) to reuse a
    keep-alive connection. Returns (status, headers as a dict with lower-case names, body)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, hdrs, data
    finally:
        if own:
            conn.close()


class RawResponse:
    def __init__(self, status, reason, headers, body, raw):
        self.status = status
        self.reason = reason
        self.headers = headers  # dict, lower-case names (last value wins)
        self.body = body
        self.raw = raw

    def __repr__(self):
        return "RawResponse(%r %r, %r, body=%r)" % (self.status, self.reason, self.headers,
                                                     self.body[:200])


def parse_response(raw, head_request=False):
    """Parses one HTTP/1.x response from bytes (Content-Length, chunked or until close).
    Returns (RawResponse, rest-of-bytes) or (None, raw) when it is not complete yet."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return None, raw
    head = raw[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    rest = raw[end + 4:]
    if head_request or status in (204, 304) or 100 <= status < 200:
        return RawResponse(status, reason, headers, b"", raw[:end + 4]), rest
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(rest) < n:
            return None, raw
        return RawResponse(status, reason, headers, rest[:n], raw[:end + 4 + n]), rest[n:]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, pos = b"", 0
        while True:
            nl = rest.find(b"\r\n", pos)
            if nl < 0:
                return None, raw
            size = int(rest[pos:nl].split(b";")[0], 16)
            if len(rest) < nl + 2 + size + 2:
                return None, raw
            body += rest[nl + 2:nl + 2 + size]
            pos = nl + 2 + size + 2
            if size == 0:
                return RawResponse(status, reason, headers, body, raw), rest[pos:]
    return None, raw  # body until close: complete only at EOF


def raw_request(host, port, data, timeout=10.0, head_request=False):
    """Sends bytes exactly as given on a fresh connection and reads one response (skipping
    100 Continue). Returns a RawResponse, or None when the server closed without answering."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        return read_response(s, head_request)


def read_response(sock, head_request=False):
    """Reads one response from a socket (skipping 100 Continue); a body without a length ends
    at EOF. Returns a RawResponse, or None when the peer closed without answering."""
    buf = b""
    eof = False
    while True:
        resp, rest = parse_response(buf, head_request)
        if resp is not None and resp.status == 100:
            buf = rest
            continue
        if resp is not None:
            return resp
        if eof:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            resp, _ = parse_response(buf[:end + 4] + b"", True)  # the head alone
            resp.body = buf[end + 4:]
            resp.raw = buf
            return resp
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if chunk:
            buf += chunk
        else:
            eof = True


def run_tests(namespace, argv=None):
    """Runs every test_* function of a module namespace in definition order (or those named
    on the command line); prints one line per test; returns the number of failures."""
    argv = sys.argv[1:] if argv is None else argv
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    if argv:
        tests = [(n, f) for n, f in tests if n in argv]
    failed = 0
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
        except Exception:
            failed += 1
            sys.stdout.write("FAIL %s (%.2fs)\n" % (name, time.monotonic() - t0))
            sys.stdout.flush()
            traceback.print_exc()
            sys.stderr.flush()
        else:
            sys.stdout.write("ok   %s (%.2fs)\n" % (name, time.monotonic() - t0))
        sys.stdout.flush()
    sys.stdout.write("%d of %d tests failed\n" % (failed, len(tests)))
    return 1 if failed else 0
