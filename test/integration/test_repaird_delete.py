"""test/integration/test_repaird_delete.py — repaird's delete_files and delete_bucket jobs
against real storaged processes: files leave every storage; a storage that is away or down
keeps the job pending (remembering which storages are done) until it is back."""
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", ""), "test", "harness"))
from repaird_env import main, wait_for, events  # noqa: E402


def test_delete_files_everywhere(env):
    cid, ss = env.add_cluster("c1")
    _, other = env.add_cluster("c2")
    names = []
    for i in range(5):
        name = os.urandom(16).hex()
        for s in ss + other[:1]:
            s.put(name, b"payload %d" % i)
        names.append(name)
    rep = env.repaird()
    jobs = [env.add_job("delete_files", {"cluster_id": cid, "internal_name": n}) for n in names]
    for j in jobs:
        env.wait_job(j)
    for n in names:
        for s in ss:
            assert not s.has(n), "%s still on %s" % (n, s.name)
        assert other[0].has(n), "a storage of another cluster lost %s" % n
    # a name that is on no storage at all (404 everywhere) is done too
    j = env.add_job("delete_files", {"cluster_id": cid, "internal_name": os.urandom(16).hex()})
    env.wait_job(j)
    done = events(rep.log_text(), "job_done")
    assert len(done) == len(jobs) + 1, done


def test_storage_away_keeps_job_pending(env):
    cid, ss = env.add_cluster("c1")
    name = os.urandom(16).hex()
    for s in ss:
        s.put(name, b"x" * 1000)
    ss[2].stop()  # the process is gone; its row still says rw
    env.repaird()
    j = env.add_job("delete_files", {"cluster_id": cid, "internal_name": name})
    info = wait_for("the job to record its progress",
                    lambda: (env.job(j)["payload"].get("done_storage_ids") and
                             env.job(j)["attempts"] == 0 and env.job(j)["last_error"] and
                             env.job(j)), timeout=20)
    assert info["state"] in ("pending", "running"), info
    assert sorted(info["payload"]["done_storage_ids"]) == sorted([ss[0].id, ss[1].id]), info
    assert ss[2].name in info["last_error"], info
    assert not ss[0].has(name) and not ss[1].has(name)
    # it waits (attempts are not used up) however long the storage is away
    wait_for("several retries",
             lambda: len(events(env.repairds[0].log_text(), "job_wait")) >= 3)
    assert env.job(j)["state"] != "failed"
    assert ss[2].on_disk(name)
    ss[2].start()
    env.wait_job(j, timeout=30)
    assert not ss[2].has(name)


def test_down_storage_remembered(env):
    cid, ss = env.add_cluster("c1")
    name = os.urandom(16).hex()
    for s in ss:
        s.put(name, b"y" * 10)
    env.sql("UPDATE storages SET mode = 'down' WHERE id = %d" % ss[1].id)
    env.repaird()
    j = env.add_job("delete_files", {"cluster_id": cid, "internal_name": name})
    wait_for("progress", lambda: env.job(j)["payload"].get("done_storage_ids"))
    info = env.job(j)
    assert "is down" in info["last_error"], info
    # a down storage gets no traffic: its copy is still there
    assert ss[1].has(name)
    assert not ss[0].has(name) and not ss[2].has(name)
    env.sql("UPDATE storages SET mode = 'rw' WHERE id = %d" % ss[1].id)
    env.wait_job(j, timeout=30)
    assert not ss[1].has(name)


def test_delete_bucket(env):
    cid, ss = env.add_cluster("c1")
    objs = [env.add_object(cid, b"obj %d" % i, ss, bucket="gone") for i in range(1203)
            if i < 3] + []
    # many rows, few files: rows beyond the first three have no files (404 = done)
    bid = env.sql_one("SELECT id FROM buckets WHERE name = 'gone'")
    env.sql("INSERT INTO objects (bucket_id, name, internal_name, cluster_id, size, etag) "
            "SELECT %s, 'o' || g, md5(g::text), %d, 0, md5('') FROM generate_series(1, 1200) g"
            % (bid, cid))
    keep_oid, keep_name = env.add_object(cid, b"kept", ss, bucket="kept")
    env.sql("UPDATE buckets SET deleted_at = now() WHERE id = %s" % bid)
    env.repaird()
    j = env.add_job("delete_bucket", {"bucket_id": int(bid)})
    env.wait_job(j, timeout=60)
    assert env.sql_one("SELECT count(*) FROM objects WHERE bucket_id = %s" % bid) == "0"
    assert env.sql_one("SELECT count(*) FROM buckets WHERE id = %s" % bid) == "0"
    n = int(env.sql_one("SELECT count(*) FROM jobs WHERE kind = 'delete_files'"))
    assert n == 1203, n
    wait_for("every delete_files job to be done",
             lambda: env.sql_one("SELECT count(*) FROM jobs WHERE kind = 'delete_files' "
                                 "AND state <> 'done'") == "0", timeout=90)
    for _, internal in objs:
        for s in ss:
            assert not s.has(internal)
    assert all(s.has(keep_name) for s in ss)
    assert env.sql_one("SELECT count(*) FROM objects WHERE id = %d" % keep_oid) == "1"


def test_delete_bucket_refuses_live_bucket(env):
    cid, ss = env.add_cluster("c1")
    oid, _ = env.add_object(cid, b"live", ss, bucket="live")
    bid = env.sql_one("SELECT id FROM buckets WHERE name = 'live'")
    env.repaird()
    j = env.add_job("delete_bucket", {"bucket_id": int(bid)})
    info = env.wait_job(j, "failed")
    assert "not deleted" in info["last_error"], info
    assert env.sql_one("SELECT count(*) FROM objects WHERE id = %d" % oid) == "1"


if __name__ == "__main__":
    main("repaird_delete", [test_delete_files_everywhere, test_storage_away_keeps_job_pending,
                            test_down_storage_remembered, test_delete_bucket,
                            test_delete_bucket_refuses_live_bucket],
         # no health checks here: a stopped storage must stay rw (test_repaird_health)
         repaird_conf={"down_after": "0"})
