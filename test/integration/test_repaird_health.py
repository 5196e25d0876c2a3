"""test/integration/test_repaird_health.py — repaird's health checks: a storage that dies, answers
errors or hangs is marked down after down_after failed checks (health_interval 200ms), with a
mode_history row saying why; a live one stays; a down one is not marked up again; down_after = 0
never marks anything down."""
import http.server
import os
import socketserver
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", ""), "test", "harness"))
from repaird_env import main, wait_for, events, free_port  # noqa: E402


class FakeStorage:
    """A loopback HTTP server whose /_health answers `status`, or never answers (hang)."""

    def __init__(self, status=503, hang=False):
        outer = self
        self.status = status
        self.hang = hang
        self.stop_evt = threading.Event()

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if outer.hang:
                    outer.stop_evt.wait(30)
                    return
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.port = free_port()
        self.server = S(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.uri = "http://127.0.0.1:%d" % self.port

    def close(self):
        self.stop_evt.set()
        self.server.shutdown()
        self.server.server_close()


def history(env, sid):
    return env.sql("SELECT from_mode, to_mode, program, reason FROM mode_history "
                   "WHERE target_kind = 'storage' AND target_id = %d ORDER BY id" % sid)


def test_dead_storage_marked_down(env):
    cid, ss = env.add_cluster("c1", 4)
    env.sql("UPDATE storages SET mode = 'spare' WHERE id = %d" % ss[3].id)
    rep = env.repaird()
    ss[1].stop()
    ss[3].stop()
    t0 = time.monotonic()
    wait_for("s2 to be marked down", lambda: ss[1].mode() == "down", timeout=15)
    took = time.monotonic() - t0
    assert took >= 0.35, "marked down after %.2fs: before 3 failed checks" % took
    wait_for("the spare to be marked down", lambda: ss[3].mode() == "down", timeout=15)
    h = history(env, ss[1].id)
    assert len(h) == 1, h
    frm, to, program, reason = h[0]
    assert (frm, to, program) == ("rw", "down", "repaird"), h
    assert "3 times in a row" in reason, reason
    assert history(env, ss[3].id)[0][:3] == ["spare", "down", "repaird"]
    fails = [e for e in events(rep.log_text(), "health_check_failed") if e["storage"] == ss[1].name]
    assert [e["fails"] for e in fails] == ["1", "2", "3"], fails
    assert events(rep.log_text(), "storage_marked_down")
    # the live ones stay as they were
    assert ss[0].mode() == "rw" and ss[2].mode() == "rw"
    assert history(env, ss[0].id) == []
    # back up, still down: bringing it back is the operator's `clusterctl repair`
    ss[1].start()
    checks = len(events(rep.log_text(), "health_check_failed"))
    time.sleep(1.0)  # five intervals in which repaird must not touch it
    assert ss[1].mode() == "down" and len(history(env, ss[1].id)) == 1
    assert len(events(rep.log_text(), "health_check_failed")) == checks, \
        "a down storage was checked"


def test_error_status_and_hang_marked_down(env):
    cid, ss = env.add_cluster("c1", 2)
    sick = FakeStorage(status=503)
    hung = FakeStorage(hang=True)
    try:
        sid_sick = int(env.sql_one("INSERT INTO storages (name, cluster_id, uri) VALUES "
                                   "('sick', %d, '%s') RETURNING id" % (cid, sick.uri)))
        sid_hung = int(env.sql_one("INSERT INTO storages (name, cluster_id, uri) VALUES "
                                   "('hung', %d, '%s') RETURNING id" % (cid, hung.uri)))
        env.repaird()
        wait_for("sick and hung to be down",
                 lambda: env.sql_one("SELECT count(*) FROM storages WHERE mode = 'down'") == "2",
                 timeout=20)
        assert "503" in history(env, sid_sick)[0][3]
        assert "tim" in history(env, sid_hung)[0][3].lower(), history(env, sid_hung)
        assert ss[0].mode() == "rw" and ss[1].mode() == "rw"
    finally:
        sick.close()
        hung.close()


def test_down_after_zero_never_marks(env):
    cid, ss = env.add_cluster("c1", 3)
    rep = env.repaird()
    ss[0].stop()
    wait_for("ten failed checks",
             lambda: any(e["fails"] == "10" for e in events(rep.log_text(), "health_check_failed")),
             timeout=15)
    assert ss[0].mode() == "rw" and history(env, ss[0].id) == []


test_down_after_zero_never_marks.repaird_conf = {"down_after": "0"}


def test_two_repaird_one_history_row(env):
    cid, ss = env.add_cluster("c1", 3)
    env.repaird("repaird-a")
    env.repaird("repaird-b")
    ss[2].stop()
    wait_for("down", lambda: ss[2].mode() == "down", timeout=15)
    time.sleep(0.6)  # both processes counted their failures by now
    assert len(history(env, ss[2].id)) == 1, history(env, ss[2].id)


if __name__ == "__main__":
    main("repaird_health", [test_dead_storage_marked_down, test_error_status_and_hang_marked_down,
                            test_down_after_zero_never_marks, test_two_repaird_one_history_row],
         repaird_conf={"health_interval": "200ms", "down_after": "3"})
