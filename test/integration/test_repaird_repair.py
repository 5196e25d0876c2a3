"""test/integration/test_repaird_repair.py — the repair_object job against real storaged
processes: missing, corrupt and truncated copies are rewritten from a verified good copy
(spares too, down storages never), a deleted object is left alone, a job without any good copy
ends 'failed' with its last error, and repair traffic obeys max_bytes_per_sec."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", ""), "test", "harness"))
import procs  # noqa: E402
from repaird_env import main, events, md5hex  # noqa: E402


def copy_of(s, name):
    st, body = s.get(name)
    return md5hex(body) if st == 200 else st


def test_missing_and_corrupt_copies(env):
    cid, ss = env.add_cluster("c1", 4)
    env.sql("UPDATE storages SET mode = 'spare' WHERE id = %d" % ss[3].id)
    data = os.urandom(300 << 10)
    oid, name = env.add_object(cid, data, ss[:1])  # only s1 holds it; s2, s3, spare miss it
    bad = bytearray(data)
    bad[1000] ^= 0xFF
    ss[1].put(name, bytes(bad))             # same size, wrong bytes
    ss[2].put(name, data[:1000])            # truncated
    rep = env.repaird()
    j = env.add_job("repair_object", {"object_id": oid})
    env.wait_job(j)
    for s in ss:
        assert copy_of(s, name) == md5hex(data), "%s not repaired" % s.name
    fixed = {e["storage"]: e["was"] for e in events(rep.log_text(), "copy_repaired")}
    assert set(fixed) == {ss[1].name, ss[2].name, ss[3].name}, fixed
    assert "corrupt" in fixed[ss[1].name] and "size" in fixed[ss[2].name], fixed
    assert fixed[ss[3].name] == '"missing"', fixed
    # all good now: a second run changes nothing
    j2 = env.add_job("repair_object", {"object_id": oid})
    env.wait_job(j2)
    assert len(events(rep.log_text(), "copy_repaired")) == 3


def test_good_copy_found_anywhere_down_untouched(env):
    cid, ss = env.add_cluster("c1", 3)
    data = b"0123456789" * 5000
    oid, name = env.add_object(cid, data, ss[2:])  # the last storage alone has it
    env.sql("UPDATE storages SET mode = 'down' WHERE id = %d" % ss[0].id)
    env.repaird()
    j = env.add_job("repair_object", {"object_id": oid})
    env.wait_job(j)
    assert copy_of(ss[1], name) == md5hex(data)
    assert copy_of(ss[0], name) == 404, "a down storage got traffic"


def test_zero_length_object(env):
    cid, ss = env.add_cluster("c1", 3)
    oid, name = env.add_object(cid, b"", ss[:2])
    env.repaird()
    env.wait_job(env.add_job("repair_object", {"object_id": oid}))
    st, body = ss[2].get(name)
    assert st == 200 and body == b""


def test_deleted_object_is_done(env):
    cid, ss = env.add_cluster("c1", 3)
    oid, name = env.add_object(cid, b"soon gone", ss[:1])
    env.sql("DELETE FROM objects WHERE id = %d" % oid)
    rep = env.repaird()
    env.wait_job(env.add_job("repair_object", {"object_id": oid}))
    assert events(rep.log_text(), "repair_skipped")
    assert not ss[1].has(name) and not ss[2].has(name)


def test_no_good_copy_fails_visibly(env):
    cid, ss = env.add_cluster("c1", 3)
    data = os.urandom(5000)
    oid, name = env.add_object(cid, data, [])
    for s in ss:
        s.put(name, os.urandom(5000))  # every copy corrupt
    rep = env.repaird(extra_env={"STF_REPAIRD_MAX_ATTEMPTS": "3"})
    j = env.add_job("repair_object", {"object_id": oid})
    info = env.wait_job(j, "failed", timeout=30)
    assert info["attempts"] == 3, info
    assert "no good copy" in info["last_error"] and ss[0].name in info["last_error"], info
    assert len(events(rep.log_text(), "job_retry")) == 2
    assert len(events(rep.log_text(), "job_failed")) == 1
    # still listed, with its error, by `clusterctl jobs`
    assert env.job_states().get("failed") == 1
    out = json.loads(env.run([procs.build_path("clusterctl", "clusterctl"), "-c", env.conf,
                              "jobs", "--json"]).stdout)
    listed = [x for x in out["jobs"] if x["id"] == j]
    assert listed and listed[0]["state"] == "failed", out
    assert "no good copy" in listed[0]["last_error"], listed
    # nothing was overwritten with a bad copy
    assert all(copy_of(s, name) != md5hex(data) for s in ss)


def test_bad_payload_fails_at_once(env):
    env.repaird()
    j = env.add_job("repair_object", {"nothing": 1})
    info = env.wait_job(j, "failed")
    assert info["attempts"] == 1 and "bad payload" in info["last_error"], info


def test_unknown_kind_waits(env):
    rep = env.repaird()
    j = env.add_job("no_such_kind", {})
    ev = None
    deadline = time.monotonic() + 10
    while not ev and time.monotonic() < deadline:
        ev = events(rep.log_text(), "job_wait")
        time.sleep(0.05)
    info = env.job(j)
    assert ev and info["state"] in ("pending", "running"), info
    assert "unknown job kind" in info["last_error"] and info["attempts"] == 0, info


def test_throttled_repair(env):
    cid, ss = env.add_cluster("c1", 3)
    data = os.urandom(1 << 20)
    oid, name = env.add_object(cid, data, ss[:2])
    rep = env.repaird()
    t0 = time.monotonic()
    env.wait_job(env.add_job("repair_object", {"object_id": oid}), timeout=60)
    took = time.monotonic() - t0
    # reads of both copies (2 MiB) and one write (1 MiB) at 512 KiB/s, minus the bucket's
    # initial burst (64 KiB): at least 5.8 s
    assert took >= 5.5, "repair took %.2fs: not throttled" % took
    assert copy_of(ss[2], name) == md5hex(data)
    assert "max_bytes_per_sec=524288" in rep.log_text()


test_throttled_repair.repaird_conf = {"down_after": "0", "max_bytes_per_sec": "512K"}


if __name__ == "__main__":
    main("repaird_repair", [test_missing_and_corrupt_copies,
                            test_good_copy_found_anywhere_down_untouched,
                            test_zero_length_object, test_deleted_object_is_done,
                            test_no_good_copy_fails_visibly, test_bad_payload_fails_at_once,
                            test_unknown_kind_waits, test_throttled_repair],
         repaird_conf={"down_after": "0"})
