"""test/integration/test_recovery_storage.py — whole-disk recovery end to end with real
PostgreSQL, Redis, storaged, repaird and clusterctl: a wiped disk comes back identical to its
peers; a stale disk (down while objects were written, deleted and overwritten) comes back with
exactly the live set; changes made during the copy are caught by the narrow recovery; killing
repaird mid-copy and starting it again finishes the job; the copy obeys max_bytes_per_sec;
`clusterctl repair` refuses what it must and reports progress as JSON lines."""
import json
import os
import select
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", ""), "test", "harness"))
import procs  # noqa: E402
from repaird_env import main, events, md5hex, wait_for  # noqa: E402

CLUSTERCTL = procs.build_path("clusterctl", "clusterctl")


def ctl(env, *args, check=True):
    return env.run([CLUSTERCTL, "-c", env.conf] + list(args), check=check)


def disk(s):
    """{aa/bb/name: (size, md5, mtime_ns)} of a storage root, hidden entries left out."""
    out = {}
    for aa in sorted(os.listdir(s.root)):
        if aa.startswith("."):
            continue
        for bb in sorted(os.listdir(os.path.join(s.root, aa))):
            for name in os.listdir(os.path.join(s.root, aa, bb)):
                path = os.path.join(s.root, aa, bb, name)
                with open(path, "rb") as f:
                    data = f.read()
                out["%s/%s/%s" % (aa, bb, name)] = (len(data), md5hex(data),
                                                    os.stat(path).st_mtime_ns)
    return out


def names(d):
    return {rel.split("/")[2] for rel in d}


def same_content(a, b):
    return {k: v[:2] for k, v in a.items()} == {k: v[:2] for k, v in b.items()}


def live_objects(env, cid):
    return {r[0]: r[1] for r in env.sql(
        "SELECT internal_name, etag FROM objects WHERE cluster_id = %d" % cid)}


def fill(env, cid, storages, n, size_min=0, size_max=60000, seed=1):
    import random
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        out.append(env.add_object(cid, os.urandom(rnd.randint(size_min, size_max)), storages))
    return out


def wipe(s):
    s.stop()
    shutil.rmtree(s.root)
    s.start()


def repair_wait(env, storage, *extra, timeout=240):
    """clusterctl repair STORAGE --wait --json: (exit code, JSON lines, stderr)."""
    p = subprocess.run([CLUSTERCTL, "-c", env.conf, "repair", storage, "--wait", "--json"]
                       + list(extra), capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    return p.returncode, lines, p.stderr


def recover_job(env, storage_id):
    return int(env.sql_one("SELECT max(id) FROM jobs WHERE kind = 'recover_storage' AND "
                           "payload ->> 'storage_id' = '%d'" % storage_id))


def cluster_mode(env, name):
    status = json.loads(ctl(env, "status", "--json").stdout)
    return [c for c in status["clusters"] if c["name"] == name][0]["mode"]


def corrupt(s, name):
    """Flips bytes of a copy in place: same size, same mtime (silent corruption)."""
    path = [os.path.join(r, name) for r, _, f in os.walk(s.root) if name in f][0]
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        b = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_wiped_disk_comes_back_identical(env):
    cid, ss = env.add_cluster("c1", 3)
    objs = fill(env, cid, ss, 150, size_min=1, seed=7)
    env.add_object(cid, b"", ss)  # a zero-length object too
    for s in ss[:2]:
        s.put("stray-file-on-the-peers", b"no object row: copied as the peers hold it")
    rep = env.repaird()
    ctl(env, "mark-down", ss[2].name, "--reason", "disk died")
    assert cluster_mode(env, "c1") == "ro"
    wipe(ss[2])
    assert disk(ss[2]) == {}
    # the chosen peer's copy of one object is corrupt: that one comes from the other peer;
    # another object is corrupt on both peers: reported lost, not copied
    corrupt(ss[0], objs[3][1])
    corrupt(ss[0], objs[4][1])
    corrupt(ss[1], objs[4][1])
    rc, lines, err = repair_wait(env, ss[2].name, "--from", ss[0].name)
    assert rc == 0, (rc, lines[-3:], err)
    assert lines[-1]["event"] == "done" and lines[-1]["mode"] == "rw", lines[-1]
    assert all(x["storage"] == ss[2].name and "bytes_total" in x for x in lines)
    assert ss[2].mode() == "rw" and cluster_mode(env, "c1") == "rw"
    peer, other, got = disk(ss[0]), disk(ss[1]), disk(ss[2])
    lost = [rel for rel in peer if rel.endswith(objs[4][1])]
    assert len(got) == 152 - 1 and not set(got) & set(lost)
    fixed = [rel for rel in peer if rel.endswith(objs[3][1])][0]
    assert got[fixed][:2] == other[fixed][:2] != peer[fixed][:2], "the good copy came"
    assert {k: v for k, v in got.items() if k != fixed} == \
        {k: v for k, v in peer.items() if k not in (fixed, lost[0])}, \
        "the copy must have the same paths, sizes, contents and mtimes as the peer"
    payload = env.job(recover_job(env, ss[2].id))["payload"]
    assert payload["files_copied"] == 151 and payload["files_total"] == 152, payload
    assert payload["files_lost"] == 1, payload
    assert payload["phase"] == "finish" and payload["peer"] == ss[0].name, payload
    assert events(rep.log_text(), "recover_object_lost")
    # the files came in batches the new disk pulled from the peer itself, which caught the
    # corrupt copies (their MD5 is not the objects' ETag) and stored none of them
    bad = [e for e in events(ss[2].daemon.log_text(), "pull_mismatch")]
    assert {e["name"] for e in bad} == {objs[3][1], objs[4][1]}, bad
    hist = env.sql("SELECT from_mode, to_mode, program FROM mode_history WHERE target_id = %d "
                   "AND target_kind = 'storage' ORDER BY id" % ss[2].id)
    assert hist[-2:] == [["down", "repair", "clusterctl"], ["repair", "rw", "repaird"]], hist
    # the storaged of the new disk counts what it received
    st, _, body = procs.http_request("127.0.0.1", ss[2].port, "GET", "/_stats")
    assert json.loads(body)["files"] == 151


def test_stale_disk_gets_exactly_the_live_set(env):
    cid, ss = env.add_cluster("c1", 3)
    objs = fill(env, cid, ss, 120, seed=3)
    rep = env.repaird()
    ctl(env, "mark-down", ss[2].name)
    ss[2].stop()
    # while s3 is away: writes, deletes and overwrites on the two others
    new = fill(env, cid, ss[:2], 30, seed=4)
    deleted = []
    for oid, name in objs[:25]:
        env.sql("DELETE FROM objects WHERE id = %d" % oid)
        env.add_job("delete_files", {"cluster_id": cid, "internal_name": name})
        deleted.append(name)
    replaced = []
    for oid, name in objs[25:40]:
        data = os.urandom(20000)
        fresh = os.urandom(16).hex()
        for s in ss[:2]:
            s.put(fresh, data)
        env.sql("UPDATE objects SET internal_name = '%s', size = %d, etag = '%s', "
                "updated_at = now() WHERE id = %d" % (fresh, len(data), md5hex(data), oid))
        env.add_job("delete_files", {"cluster_id": cid, "internal_name": name})
        replaced.append(name)
    wait_for("the deletes to reach s1 and s2",
             lambda: not any(ss[0].on_disk(n) or ss[1].on_disk(n) for n in deleted + replaced))
    ss[2].start()
    # damage on the stale disk: a truncated copy and a stray file
    bad = objs[50][1]
    path = [os.path.join(r, bad) for r, _, f in os.walk(ss[2].root) if bad in f][0]
    with open(path, "r+b") as f:
        f.truncate(100)
    stray = "0123456789abcdef0123456789abcdef"
    ss[2].put(stray, b"garbage nobody references")
    rc, lines, err = repair_wait(env, ss[2].name)
    assert rc == 0, (rc, lines[-3:], err)
    wait_for("every delete job to finish",
             lambda: env.sql_one("SELECT count(*) FROM jobs WHERE kind = 'delete_files' AND "
                                 "state <> 'done'") == "0", timeout=30)
    live = live_objects(env, cid)
    assert len(live) == 120 - 25 + 30
    for s in ss:
        d = disk(s)
        assert names(d) == set(live), (s.name, names(d) ^ set(live))
        assert all(v[1] == live[rel.split("/")[2]] for rel, v in d.items()), s.name
    assert same_content(disk(ss[2]), disk(ss[0]))
    payload = env.job(recover_job(env, ss[2].id))["payload"]
    # peer: 120 - 25 deleted - 15 replaced + 30 new + 15 replacements = 125 files;
    # stale disk: the 120 originals (one truncated) + a stray file
    assert payload["files_total"] == 125, payload
    assert payload["files_same"] == 120 - 25 - 15 - 1, payload
    assert payload["files_updated"] == 1, payload
    assert payload["files_copied"] == 30 + 15, payload
    # the 41 leftovers went, by the copy or by their delete jobs, whichever came first
    assert payload["files_deleted"] <= 25 + 15 + 1, payload
    # the stale disk received about what it lacked, not the whole disk
    assert payload["bytes_sent"] < sum(v[0] for v in disk(ss[0]).values()) // 2, payload
    assert events(rep.log_text(), "recover_done")


def test_changes_during_copy_and_throttle(env):
    cid, ss = env.add_cluster("c1", 3)
    objs = fill(env, cid, ss, 160, size_min=40000, size_max=60000, seed=5)
    total = sum(v[0] for v in disk(ss[0]).values())
    env.repaird()
    ctl(env, "mark-down", ss[2].name)
    wipe(ss[2])
    t0 = time.monotonic()
    out = ctl(env, "repair", ss[2].name, "--from", ss[1].name)
    assert "repair" in out.stdout, out.stdout
    jid = recover_job(env, ss[2].id)
    wait_for("the copy to be under way",
             lambda: (env.job(jid)["payload"].get("files_done") or 0) > 10, timeout=60)
    # during the copy: a deleted object (its delete job already ran everywhere else, as when
    # it raced the copy) and objects created in the cluster (only on the other two)
    gone_oid, gone = objs[-1]
    env.sql("DELETE FROM objects WHERE id = %d" % gone_oid)
    env.add_job("delete_files", {"cluster_id": cid, "internal_name": gone}, announce=False)
    env.sql("UPDATE jobs SET state = 'done' WHERE kind = 'delete_files'")
    created = fill(env, cid, ss[:2], 5, seed=6)
    # reads go on from the other members meanwhile
    for _, name in objs[:20]:
        assert ss[0].get(name)[0] == 200 and ss[1].get(name)[0] == 200
    assert ss[2].mode() == "repair" and cluster_mode(env, "c1") == "ro"
    rc, lines, err = repair_wait(env, ss[2].name)  # follows the running job
    elapsed = time.monotonic() - t0
    assert rc == 0, (rc, lines[-3:], err)
    d = disk(ss[2])
    assert gone not in names(d), "a deleted object came back"
    assert all(name in names(d) for _, name in created), "objects created during the copy"
    assert names(d) == set(live_objects(env, cid))
    payload = env.job(jid)["payload"]
    assert payload["narrow_copied"] == 5, payload
    # max_bytes_per_sec = 2M: the copy cannot have been faster
    assert elapsed >= total / (2 << 20) * 0.8, (elapsed, total)
    progress = [x for x in lines if x["event"] == "progress"]
    assert progress and all(x["files_total"] == 160 for x in progress if x["phase"] == "copy")


test_changes_during_copy_and_throttle.repaird_conf = {"max_bytes_per_sec": "2M"}


def test_repaird_killed_mid_copy_resumes(env):
    cid, ss = env.add_cluster("c1", 3)
    fill(env, cid, ss, 160, size_min=40000, size_max=60000, seed=8)
    rep = env.repaird(extra_env={"STF_RECOVER_SYNC_MS": "500"})
    ctl(env, "mark-down", ss[2].name)
    wipe(ss[2])
    ctl(env, "repair", ss[2].name)
    jid = recover_job(env, ss[2].id)
    wait_for("a checkpoint a good way into the copy",
             lambda: (env.job(jid)["payload"].get("files_done") or 0) >= 40, timeout=60)
    wait_for("a resume cursor",
             lambda: env.job(jid)["payload"].get("cursor_files_done", 0) >= 20, timeout=60)
    rep.kill9()
    # killed with batches in flight on the new disk (it goes on pulling from the peer alone)
    assert events(ss[2].daemon.log_text(), "pull_done"), "the files come in batches"
    done_before = env.job(jid)["payload"]["cursor_files_done"]
    assert done_before < 160
    rep2 = env.repaird(extra_env={"STF_RECOVER_SYNC_MS": "500"})
    rc, lines, err = repair_wait(env, ss[2].name)
    assert rc == 0, (rc, lines[-3:], err)
    runs = events(rep2.log_text(), "recover_run")
    assert runs and runs[0]["cursor"] != "-", "the second repaird must resume, not start over"
    assert same_content(disk(ss[2]), disk(ss[0]))
    payload = env.job(jid)["payload"]
    assert payload["files_done"] == 160, payload
    # the resumed run copied only what the first had not (plus a checkpoint's worth at most)
    copies = events(rep2.log_text(), "recover_copy_done")
    assert copies and int(copies[0]["copied"]) < 160 + 40, copies


test_repaird_killed_mid_copy_resumes.repaird_conf = {"max_bytes_per_sec": "2M"}


def test_refusals_and_abort(env):
    cid, ss = env.add_cluster("c1", 3)
    cid2, tt = env.add_cluster("c2", 3)
    fill(env, cid, ss, 20, size_min=30000, size_max=40000, seed=9)
    env.repaird()

    def refused(*args):
        p = ctl(env, "repair", *args, check=False)
        assert p.returncode == 1 and p.stderr.count("\n") == 1, (args, p.returncode, p.stderr)
        return p.stderr

    assert "only a down or spare storage can be repaired" in refused(ss[2].name)
    assert "no storage named" in refused("nosuch")
    ctl(env, "mark-down", ss[2].name)
    assert "not a storage of cluster c1" in refused(ss[2].name, "--from", tt[0].name)
    assert "itself" in refused(ss[2].name, "--from", ss[2].name)
    ctl(env, "mark-down", ss[1].name)
    assert "readable" in refused(ss[2].name, "--from", ss[1].name)
    ss[2].stop()
    assert "must run on its (new) disk" in refused(ss[2].name)
    assert ss[2].mode() == "down", "a refused repair changes nothing"
    assert env.sql_one("SELECT count(*) FROM jobs WHERE kind = 'recover_storage'") == "0"
    assert ctl(env, "repair", check=False).returncode == 2  # usage errors
    assert ctl(env, "repair", "a", "b", check=False).returncode == 2
    # a second `repair` on a storage being repaired points at its job
    wipe(ss[2])
    ctl(env, "repair", ss[2].name, "--from", ss[0].name)
    again = ctl(env, "repair", ss[2].name)
    assert "already being repaired" in again.stdout, again.stdout
    assert "another peer" in refused(ss[2].name, "--from", ss[1].name)
    # an abort (mark-down) while `repair --wait` follows: it exits 1 and says why
    follower = subprocess.Popen([CLUSTERCTL, "-c", env.conf, "repair", ss[2].name, "--wait",
                                 "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        ready, _, _ = select.select([follower.stdout], [], [], 30)
        assert ready and json.loads(follower.stdout.readline())["event"] == "progress"
        ctl(env, "mark-down", ss[2].name, "--reason", "abort")
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 1 and "abandoned" in err, (follower.returncode, err)
    jid = recover_job(env, ss[2].id)
    env.wait_job(jid, "failed", timeout=30)
    assert "left repair" in env.job(jid)["last_error"]


test_refusals_and_abort.repaird_conf = {"max_bytes_per_sec": "64K"}


if __name__ == "__main__":
    main("recovery_storage", [test_wiped_disk_comes_back_identical,
                              test_stale_disk_gets_exactly_the_live_set,
                              test_changes_during_copy_and_throttle,
                              test_repaird_killed_mid_copy_resumes,
                              test_refusals_and_abort])
