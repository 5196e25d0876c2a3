"""test/integration/test_repaird_redis.py — PostgreSQL is the record, Redis the fast path: a Redis
restart (SHUTDOWN NOSAVE: every stream entry lost) loses no queued deletion, jobs recorded while
Redis is away still run, and an announcement that never reached the stream is made up for."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", ""), "test", "harness"))
from repaird_env import main, wait_for, events  # noqa: E402


def put_names(ss, n):
    names = [os.urandom(16).hex() for _ in range(n)]
    for name in names:
        for s in ss:
            s.put(name, b"bytes of " + name.encode())
    return names


def assert_gone(ss, names):
    for name in names:
        for s in ss:
            assert not s.has(name), "%s still on %s" % (name, s.name)


def test_redis_restart_loses_no_queued_deletion(env):
    cid, ss = env.add_cluster("c1")
    names = put_names(ss, 20)
    # queued while no repaird runs: the stream holds the entries, nobody reads them
    jobs = [env.add_job("delete_files", {"cluster_id": cid, "internal_name": n}) for n in names]
    assert env.redis("XLEN", "stf:jobs") == "20"
    env.redis_restart()
    assert env.redis("EXISTS", "stf:jobs") == "0", "the restart did not lose the stream"
    rep = env.repaird()
    for j in jobs:
        env.wait_job(j)
    assert_gone(ss, names)
    assert events(rep.log_text(), "job_group_created"), "the group was not recreated"
    assert len(events(rep.log_text(), "job_done")) == 20


def test_redis_restart_under_running_repaird(env):
    cid, ss = env.add_cluster("c1")
    rep = env.repaird()
    first = put_names(ss, 3)
    for j in [env.add_job("delete_files", {"cluster_id": cid, "internal_name": n}) for n in first]:
        env.wait_job(j)
    names = put_names(ss, 10)
    env.redis_stop()
    # recorded while Redis is away (the announcement fails, as jobs_enqueue's would)
    jobs = [env.add_job("delete_files", {"cluster_id": cid, "internal_name": n}, announce=False)
            for n in names]
    for j in jobs:
        env.wait_job(j)
    assert_gone(ss, names)
    assert events(rep.log_text(), "redis_unreachable"), "repaird did not notice Redis was away"
    env.redis_start()
    wait_for("repaird to see Redis back", lambda: events(rep.log_text(), "redis_back"))
    more = put_names(ss, 5)
    for j in [env.add_job("delete_files", {"cluster_id": cid, "internal_name": n}) for n in more]:
        env.wait_job(j)
    assert_gone(ss, more)
    assert rep.alive()


def test_lost_announcement_made_up(env):
    cid, ss = env.add_cluster("c1")
    rep = env.repaird()
    names = put_names(ss, 4)
    t0 = time.monotonic()
    # rows recorded, Redis up, but no stream entry (e.g. Redis was away for a moment)
    jobs = [env.add_job("delete_files", {"cluster_id": cid, "internal_name": n}, announce=False)
            for n in names]
    for j in jobs:
        env.wait_job(j, timeout=20)
    elapsed = time.monotonic() - t0
    assert_gone(ss, names)
    reasons = {e.get("reason") for e in events(rep.log_text(), "jobs_announced")}
    # the sweep makes up the lost announcements: after the stale delay ("due"), or at once when
    # a slow start (e.g. under ASan) put the rows in before the new group's re-announce-all
    if "group_created" not in reasons:
        assert elapsed >= 1.5, "done before the stale delay: announced by whom?"
        assert "due" in reasons, reasons


def test_dead_consumer_entry_reclaimed(env):
    cid, ss = env.add_cluster("c1")
    rep = env.repaird(extra_env={"STF_REPAIRD_LEASE": "2s", "STF_REPAIRD_STALE": "10m"})
    names = put_names(ss, 1)
    env.stop(rep)  # so that the ghost below, not repaird, reads the entry
    j = env.add_job("delete_files", {"cluster_id": cid, "internal_name": names[0]})
    got = env.redis("XREADGROUP", "GROUP", "repaird", "ghost", "COUNT", "1", "STREAMS",
                    "stf:jobs", ">")
    assert str(j) in got, got
    rep = env.repaird(extra_env={"STF_REPAIRD_LEASE": "2s", "STF_REPAIRD_STALE": "10m"})
    env.wait_job(j, timeout=20)
    assert events(rep.log_text(), "job_entries_reclaimed"), "XAUTOCLAIM did not hand the entry on"
    assert_gone(ss, names)
    assert env.redis("XPENDING", "stf:jobs", "repaird").splitlines()[0] == "0"


if __name__ == "__main__":
    main("repaird_redis", [test_redis_restart_loses_no_queued_deletion,
                           test_redis_restart_under_running_repaird,
                           test_lost_announcement_made_up,
                           test_dead_consumer_entry_reclaimed],
         repaird_conf={"down_after": "0"})
