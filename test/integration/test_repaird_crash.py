"""test/integration/test_repaird_crash.py — leases: a repaird killed with -9 in the middle of a
job does not lose it, SIGTERM releases a running job, a live lease of another repaird is
respected until it runs out, two repaird processes run many jobs each exactly once, and
`clusterctl repair --wait` follows a recovery through a PostgreSQL restart."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", ""), "test", "harness"))
import procs  # noqa: E402
from repaird_env import main, wait_for, events, md5hex, http  # noqa: E402

SLOW = {"down_after": "0", "max_bytes_per_sec": "512K"}


def object_missing_on_one(env, size):
    cid, ss = env.add_cluster("c1")
    data = os.urandom(size)
    oid, name = env.add_object(cid, data, ss)
    assert http("DELETE", ss[1].url(name))[0] == 204
    assert not ss[1].has(name)
    return oid, name, data, ss


def test_kill9_mid_job(env):
    oid, name, data, ss = object_missing_on_one(env, 1 << 20)  # 2 MiB to move at 512K/s
    rep = env.repaird()
    j = env.add_job("repair_object", {"object_id": oid})
    wait_for("the job to start", lambda: events(rep.log_text(), "job_start"))
    time.sleep(0.5)  # let bytes move: the kill must land in the middle of the transfer
    info = env.job(j)
    assert info["state"] == "running" and info["locked_by"], info
    rep.kill9()
    assert env.job(j)["state"] == "running"  # the dead process still holds the lease
    rep2 = env.repaird("repaird2")
    info = env.wait_job(j, timeout=30)
    released = events(rep2.log_text(), "job_lease_released")
    assert released and released[0]["id"] == str(j), rep2.log_text()
    assert info["attempts"] == 2, info
    st, body = ss[1].get(name)
    assert st == 200 and md5hex(body) == md5hex(data)


test_kill9_mid_job.repaird_conf = SLOW


def test_sigterm_releases_running_job(env):
    oid, name, data, ss = object_missing_on_one(env, 1 << 20)
    rep = env.repaird()
    j = env.add_job("repair_object", {"object_id": oid})
    wait_for("the job to start", lambda: events(rep.log_text(), "job_start"))
    t0 = time.monotonic()
    assert env.stop(rep) == 0
    assert time.monotonic() - t0 < 5, "shutdown waited for the throttled transfer"
    assert events(rep.log_text(), "job_released"), rep.log_text()
    info = env.job(j)
    assert info["state"] == "pending" and info["attempts"] == 0 and not info["locked_by"], info
    env.repaird("repaird2")
    env.wait_job(j, timeout=30)
    st, body = ss[1].get(name)
    assert st == 200 and md5hex(body) == md5hex(data)


test_sigterm_releases_running_job.repaird_conf = SLOW


def test_foreign_live_lease_respected(env):
    cid, ss = env.add_cluster("c1")
    name = os.urandom(16).hex()
    for s in ss:
        s.put(name, b"z")
    rep = env.repaird()
    j = env.add_job("delete_files", {"cluster_id": cid, "internal_name": name}, announce=False)
    # another machine's repaird holds it for 3 more seconds
    env.sql("UPDATE jobs SET state = 'running', attempts = 1, locked_by = 'elsewhere:1:2:3', "
            "locked_until = now() + interval '3 seconds' WHERE id = %d" % j)
    env.redis("XADD", "stf:jobs", "*", "id", str(j))
    t0 = time.monotonic()
    info = env.wait_job(j, timeout=20)
    assert time.monotonic() - t0 >= 2.5, "a live lease of another repaird was not respected"
    expired = events(rep.log_text(), "job_lease_expired")
    assert expired and expired[0]["holder"] == "elsewhere:1:2:3", rep.log_text()
    assert len(events(rep.log_text(), "job_start")) == 1
    assert info["attempts"] == 2
    assert all(not s.has(name) for s in ss)


def test_two_repaird_each_job_once(env):
    cid, ss = env.add_cluster("c1")
    a = env.repaird("repaird-a")
    b = env.repaird("repaird-b")
    n = 300
    names = [os.urandom(16).hex() for _ in range(n)]
    for name in names[:30]:
        for s in ss:
            s.put(name, b"q")
    jobs = env.add_jobs("delete_files", [{"cluster_id": cid, "internal_name": nm} for nm in names])
    wait_for("every job to be done",
             lambda: env.sql_one("SELECT count(*) FROM jobs WHERE state = 'done'") == str(n),
             timeout=60)
    starts = {}
    done = {}
    for p in (a, b):
        for e in events(p.log_text(), "job_start"):
            starts.setdefault(e["id"], []).append(p.name)
        for e in events(p.log_text(), "job_done"):
            done.setdefault(e["id"], []).append(p.name)
    for j in jobs:
        assert len(starts.get(str(j), [])) == 1, "job %d started %r" % (j, starts.get(str(j)))
        assert len(done.get(str(j), [])) == 1, "job %d done %r" % (j, done.get(str(j)))
    by = {p.name: sum(1 for v in done.values() if v == [p.name]) for p in (a, b)}
    assert all(v > 0 for v in by.values()), "one repaird did everything: %r" % by
    assert env.sql_one("SELECT max(attempts) FROM jobs") == "1"
    for name in names[:30]:
        assert all(not s.has(name) for s in ss)


def test_two_repaird_slow_jobs_never_overlap(env):
    # slower jobs (throttled repairs) so that overlapping runs would show in the logs
    cid, ss = env.add_cluster("c1")
    oids = []
    for i in range(6):
        data = os.urandom(96 << 10)
        oid, name = env.add_object(cid, data, ss)
        assert http("DELETE", ss[i % 3].url(name))[0] == 204
        oids.append(oid)
    a = env.repaird("repaird-a")
    b = env.repaird("repaird-b")
    jobs = [env.add_job("repair_object", {"object_id": o}) for o in oids]
    for j in jobs:
        env.wait_job(j, timeout=60)
    spans = {}
    for p in (a, b):
        for ev in ("job_start", "job_done"):
            for e in events(p.log_text(), ev):
                spans.setdefault(e["id"], []).append((e["_ts"], ev, p.name))
    for j in jobs:
        s = sorted(spans[str(j)])
        assert [x[1] for x in s] == ["job_start", "job_done"], "job %d: %r" % (j, s)
    assert sum(len(events(p.log_text(), "copy_repaired")) for p in (a, b)) == 6


test_two_repaird_slow_jobs_never_overlap.repaird_conf = {"down_after": "0",
                                                         "max_bytes_per_sec": "256K"}


def test_repair_wait_survives_a_database_restart(env):
    """`clusterctl repair --wait` follows the recovery through a PostgreSQL restart: the job
    goes on, so the follower must not give up on the first failed read."""
    clusterctl = procs.build_path("clusterctl", "clusterctl")
    env.sql("ALTER DATABASE \"%s\" SET synchronous_commit = on" % os.environ["PGDATABASE"])
    cid, ss = env.add_cluster("c1")
    for i in range(20):
        env.add_object(cid, os.urandom(1000 + i), ss)
    env.run([clusterctl, "-c", env.conf, "mark-down", ss[2].name, "--reason", "disk died"])
    # no repaird yet: the job waits while the database goes away under the follower
    follower = subprocess.Popen([clusterctl, "-c", env.conf, "repair", ss[2].name, "--wait",
                                 "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        assert json.loads(follower.stdout.readline())["event"] == "progress"
        procs.pg_stop()
        time.sleep(2.0)  # ten failed reads at least
        assert follower.poll() is None, follower.stderr.read()
        procs.pg_start()
        env.repaird()
        out, err = follower.communicate(timeout=90)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, (follower.returncode, err)
    assert json.loads(out.splitlines()[-1])["event"] == "done", out[-500:]
    assert ss[2].mode() == "rw"


if __name__ == "__main__":
    main("repaird_crash", [test_kill9_mid_job, test_sigterm_releases_running_job,
                           test_foreign_live_lease_respected, test_two_repaird_each_job_once,
                           test_two_repaird_slow_jobs_never_overlap,
                           test_repair_wait_survives_a_database_restart],
         repaird_conf={"down_after": "0"})
