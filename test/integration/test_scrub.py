"""test/integration/test_scrub.py — repaird's background scrub against real storaged, PostgreSQL
and Redis: it re-reads every copy, and a corrupt (same size) or missing copy is found and
healed from a good one through a repair_object job; it reads no faster than
scrub_bytes_per_sec; with several repaird only one scrubs; scrub_bytes_per_sec = 0 turns it
off."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", ""), "test", "harness"))
from repaird_env import main, events, md5hex, http, wait_for  # noqa: E402

SCRUB_NOW = {"STF_REPAIRD_SCRUB_START": "0"}


def reset_scrub(env):
    """A fresh pass (the state survives from earlier tests in the same database)."""
    env.sql("UPDATE scrub_state SET after_object_id = 0, pass = 0, pass_started_at = NULL, "
            "last_pass_started_at = NULL, last_pass_finished_at = NULL, objects_checked = 0, "
            "copies_checked = 0, bytes_checked = 0, bad_copies = 0, locked_by = NULL, "
            "locked_until = NULL")


def copy_md5(s, name):
    st, body = s.get(name)
    return md5hex(body) if st == 200 else st


def test_scrub_heals_a_corrupt_copy(env):
    reset_scrub(env)
    cid, ss = env.add_cluster("c1")
    objs = []
    for i in range(5):
        data = os.urandom(30000 + i)
        objs.append((data,) + env.add_object(cid, data, ss))
    data, oid, name = objs[2]
    bad = bytearray(data)
    bad[12345] ^= 0x55
    ss[1].put(name, bytes(bad))                    # corrupt, same size: only an MD5 shows it
    data4, oid4, name4 = objs[4]
    http("DELETE", ss[2].url(name4))               # and one copy missing
    rep = env.repaird(extra_env=SCRUB_NOW)
    wait_for("the corrupt copy to be healed", lambda: copy_md5(ss[1], name) == md5hex(data))
    wait_for("the missing copy to be healed", lambda: copy_md5(ss[2], name4) == md5hex(data4))
    bad_events = events(rep.log_text(), "scrub_bad_copy")
    assert {int(e["object_id"]) for e in bad_events} == {oid, oid4}, bad_events
    assert "md5" in [e for e in bad_events if int(e["object_id"]) == oid][0]["bad"]
    wait_for("the pass to end", lambda: events(rep.log_text(), "scrub_pass_done"))
    done = events(rep.log_text(), "scrub_pass_done")[0]
    assert (done["objects"], done["copies"], done["bad_copies"]) == ("5", "15", "2"), done
    assert env.sql_one("SELECT pass FROM scrub_state") == "1"
    # the good copies were left alone, every copy is good now
    for data, oid, name in objs:
        assert all(copy_md5(s, name) == md5hex(data) for s in ss), name


test_scrub_heals_a_corrupt_copy.repaird_conf = {"down_after": "0",
                                                "scrub_bytes_per_sec": "16M"}


def test_scrub_obeys_its_rate(env):
    reset_scrub(env)
    cid, ss = env.add_cluster("c1")
    for i in range(2):
        env.add_object(cid, os.urandom(256 << 10), ss)
    rep = env.repaird(extra_env=SCRUB_NOW)
    t0 = time.monotonic()
    wait_for("the pass to end", lambda: events(rep.log_text(), "scrub_pass_done"), timeout=30)
    took = time.monotonic() - t0
    # 6 copies of 256 KiB = 1.5 MiB at 512 KiB/s, less the bucket's initial burst: >= 2.5 s
    assert took >= 2.5, "scrub read 1.5 MiB in %.2fs: not throttled" % took
    assert events(rep.log_text(), "scrub_pass_done")[0]["bytes"] == str(6 * (256 << 10))
    # the next pass waits for STF_REPAIRD_SCRUB_PASS (24h by default): nothing more is read
    assert env.sql_one("SELECT after_object_id FROM scrub_state") == "0"


test_scrub_obeys_its_rate.repaird_conf = {"down_after": "0", "scrub_bytes_per_sec": "512K"}


def test_one_scrubber_among_several_repaird(env):
    reset_scrub(env)
    cid, ss = env.add_cluster("c1")
    data = os.urandom(40000)
    oid, name = env.add_object(cid, data, ss)
    extra = dict(SCRUB_NOW, STF_REPAIRD_SCRUB_PASS="500ms")
    a = env.repaird("a", extra_env=extra)
    b = env.repaird("b", extra_env=extra)
    # passes come every half second: several of them, all by one holder at a time
    wait_for("three passes", lambda: int(env.sql_one("SELECT pass FROM scrub_state")) >= 3)
    started = [len(events(d.log_text(), "scrub_started")) for d in (a, b)]
    assert started == [1, 1], started
    bad = bytearray(data)
    bad[0] ^= 1
    ss[0].put(name, bytes(bad))
    wait_for("the copy to be healed", lambda: copy_md5(ss[0], name) == md5hex(data))
    found = [len(events(d.log_text(), "scrub_bad_copy")) for d in (a, b)]
    assert sum(found) >= 1, found
    # every pass was made once, by one holder, over the three copies
    done = events(a.log_text(), "scrub_pass_done") + events(b.log_text(), "scrub_pass_done")
    passes = [e["pass"] for e in done]
    assert len(passes) == len(set(passes)), passes
    assert all(e["copies"] == "3" for e in done), done


test_one_scrubber_among_several_repaird.repaird_conf = {"down_after": "0",
                                                        "scrub_bytes_per_sec": "64M"}


def test_scrub_off(env):
    reset_scrub(env)
    cid, ss = env.add_cluster("c1")
    env.add_object(cid, b"x" * 1000, ss)
    rep = env.repaird(extra_env=SCRUB_NOW)
    wait_for("the scrub_off line", lambda: events(rep.log_text(), "scrub_off"))
    assert not events(rep.log_text(), "scrub_started")
    assert env.sql_one("SELECT locked_by FROM scrub_state") is None or \
        env.sql_one("SELECT locked_by FROM scrub_state") == ""


test_scrub_off.repaird_conf = {"down_after": "0", "scrub_bytes_per_sec": "0"}


if __name__ == "__main__":
    main("scrub", [test_scrub_heals_a_corrupt_copy, test_scrub_obeys_its_rate,
                   test_one_scrubber_among_several_repaird, test_scrub_off])
