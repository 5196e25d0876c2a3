"""test/integration/test_dispatcher_modes.py — a running dispatcher follows mode changes: writes
move away from a cluster within 1 s of `clusterctl mark-down` (a storage) or `cluster mark-ro`,
through the Redis channel "stf:modes", and also while Redis is away (periodic reload); any
message on the channel makes it reload. Real storaged, PostgreSQL, Redis, clusterctl."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402


def c1_names(s, n, prefix):
    out = []
    i = 0
    while len(out) < n:
        name = "%s%d" % (prefix, i)
        if de.write_order(s, "b/" + name)[0] == "c1":
            out.append(name)
        i += 1
    return out


def seconds_until_writes_avoid_c1(s, names, start):
    """PUTs names preferring c1 one after another until one lands elsewhere; returns the
    seconds from start (the moment the mode change was made) to that write's answer."""
    for name in names:
        st, _, _ = s.put("/b/" + name, b"x")
        assert st == 201, st
        if s.object_row("b", name)[1] != "c1":
            return time.monotonic() - start
    raise AssertionError("writes still go to c1")


def test_mark_down_moves_writes_within_1s():
    with procs.Procs() as p:
        s = de.System(p, clusters=2)
        s.req("PUT", "/b")
        names = c1_names(s, 300, "a")
        assert s.put("/b/" + names[0], b"x")[0] == 201
        assert s.object_row("b", names[0])[1] == "c1"
        t0 = time.monotonic()
        s.ctl("mark-down", "c1-s2", "--reason", "disk replacement")
        took = seconds_until_writes_avoid_c1(s, names[1:], t0)
        assert took < 1.0, "writes reached c1 for %.2f s after mark-down" % took
        assert "event=modes_changed" in s.dispatchers[0].log_text()
        # reads of c1's objects go on from its remaining members
        assert s.req("GET", "/b/" + names[0])[2] == b"x"

        # down -> rw needs a repair: put the row back by hand (no notification from that) and
        # announce it with an arbitrary message, which must be enough to reload
        names2 = c1_names(s, 300, "c")
        s.sql("UPDATE storages SET mode = 'rw' WHERE name = 'c1-s2'")
        s.redis("PUBLISH", "stf:modes", "test: any message reloads")
        de.wait_until(lambda: s.put("/b/" + names2[0], b"y")[0] == 201 and
                      s.object_row("b", names2[0])[1] == "c1", what="c1 to take writes again")
        t0 = time.monotonic()
        s.ctl("cluster", "mark-ro", "c1", "--reason", "maintenance")
        took = seconds_until_writes_avoid_c1(s, names2[1:], t0)
        assert took < 1.0, "writes reached c1 for %.2f s after cluster mark-ro" % took


def test_redis_away_periodic_reload():
    with procs.Procs() as p:
        s = de.System(p, clusters=2)
        s.req("PUT", "/b")
        names = c1_names(s, 300, "r")
        s.redis_stop()
        try:
            de.wait_until(lambda: "event=redis_subscription_lost" in
                          s.dispatchers[0].log_text(), what="the subscription to drop")
            assert s.put("/b/" + names[0], b"x")[0] == 201
            assert s.object_row("b", names[0])[1] == "c1"
            t0 = time.monotonic()
            s.ctl("mark-down", "c1-s3", "--reason", "redis is away")
            took = seconds_until_writes_avoid_c1(s, names[1:], t0)
            assert took < 1.0, "writes reached c1 for %.2f s without Redis" % took
        finally:
            s.redis_start()
        de.wait_until(lambda: s.dispatchers[0].log_text().count("event=redis_subscribed") >= 2,
                      what="the dispatcher to subscribe again")


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
