"""test/integration/test_verify.py — `clusterctl verify CLUSTER [--repair]` against real storaged,
PostgreSQL, Redis and repaird: injected missing copies, extra files (old, young, and old
versions awaiting their delete_files job) and corrupted copies (same size, truncated) are
found, counted per storage and sampled; --repair copies good copies over (through repaird),
removes the old extra files only, and a second verify finds nothing; --quick sees sizes only;
a storage that cannot be read makes the report incomplete; a file whose object lives in another
cluster is extra."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", ""), "test", "harness"))
from repaird_env import main, md5hex, http, wait_for  # noqa: E402
import procs  # noqa: E402

CLUSTERCTL = procs.build_path("clusterctl", "clusterctl")


def verify(env, *args):
    """(exit code, report) of `clusterctl verify ... --json`."""
    p = env.run([CLUSTERCTL, "-c", env.conf, "verify"] + list(args) + ["--json"], check=False)
    assert p.returncode in (0, 1) and p.stdout.startswith("{"), (p.returncode, p.stdout,
                                                                   p.stderr)
    return p.returncode, json.loads(p.stdout)


def by_storage(rep):
    return {s["name"]: s for s in rep["storages"]}


def path_on_disk(s, name):
    for d, _, files in os.walk(s.root):
        if name in files:
            return os.path.join(d, name)
    return None


def age(s, name, seconds):
    """Sets the file's mtime seconds into the past."""
    p = path_on_disk(s, name)
    t = time.time() - seconds
    os.utime(p, (t, t))


def objects(env, cid, ss, n, size=20000):
    """n objects on every storage of ss; returns [(id, internal name, bytes)]."""
    out = []
    for i in range(n):
        data = os.urandom(size + i)
        oid, name = env.add_object(cid, data, ss, name="obj%02d" % i)
        out.append((oid, name, data))
    return out


def test_clean_cluster_verifies(env):
    cid, ss = env.add_cluster("c1")
    objects(env, cid, ss, 5)
    rc, rep = verify(env, "c1")
    assert rc == 0 and rep["problems"] == 0 and rep["complete"], rep
    assert rep["objects"] == 5 and rep["bytes_read"] == sum(20000 + i for i in range(5)) * 3, rep
    for st in rep["storages"]:
        assert (st["files"], st["missing"], st["corrupt"], st["extra"]) == (5, 0, 0, 0), st
    # the human report says so too
    p = env.run([CLUSTERCTL, "-c", env.conf, "verify", "c1"])
    assert "no problems found" in p.stdout and "c1-s1" in p.stdout, p.stdout


def test_finds_injected_problems_and_repairs_them(env):
    cid, ss = env.add_cluster("c1")
    objs = objects(env, cid, ss, 6)
    (o_miss, n_miss, d_miss), (o_bad, n_bad, d_bad), (o_short, n_short, d_short) = objs[:3]
    http("DELETE", ss[1].url(n_miss))                      # missing on s2
    bad = bytearray(d_bad)
    bad[100] ^= 0xFF
    ss[2].put(n_bad, bytes(bad))                           # corrupt on s3, same size
    ss[0].put(n_short, d_short[:1000])                     # truncated on s1
    old_extra, young_extra, old_version = os.urandom(16).hex(), os.urandom(16).hex(), \
        os.urandom(16).hex()
    ss[0].put(old_extra, b"garbage" * 100)                 # no object: 2 days old
    age(ss[0], old_extra, 2 * 86400)
    ss[1].put(young_extra, b"maybe an upload in flight")   # no object: fresh
    for s in ss:                                           # an old version awaiting deletion
        s.put(old_version, b"old version")
        age(s, old_version, 2 * 86400)
    env.sql("INSERT INTO jobs (kind, payload, run_after) VALUES ('delete_files', "
            "'{\"cluster_id\": %d, \"internal_name\": \"%s\"}', now() + interval '1 hour')"
            % (cid, old_version))

    rc, rep = verify(env, "c1", "--min-age", "1h")
    st = by_storage(rep)
    assert rc == 1 and rep["complete"], rep
    assert (st["c1-s1"]["missing"], st["c1-s2"]["missing"], st["c1-s3"]["missing"]) == (0, 1, 0)
    assert (st["c1-s1"]["corrupt"], st["c1-s2"]["corrupt"], st["c1-s3"]["corrupt"]) == (1, 0, 1)
    assert (st["c1-s1"]["extra"], st["c1-s2"]["extra"], st["c1-s3"]["extra"]) == (1, 1, 0)
    assert st["c1-s1"]["extra_bytes"] == 700 and st["c1-s2"]["extra_young"] == 1, st
    assert all(s["pending_delete"] == 1 for s in rep["storages"]), rep["storages"]
    assert rep["problems"] == 4, rep  # the young extra file is reported, not a problem
    kinds = {(x["kind"], x["storage"]): x for x in rep["samples"]}
    assert kinds[("missing", "c1-s2")]["object_id"] == o_miss
    assert "md5" in kinds[("corrupt", "c1-s3")]["detail"], kinds
    assert "1000 bytes" in kinds[("corrupt", "c1-s1")]["detail"], kinds
    assert old_extra in kinds[("extra", "c1-s1")]["what"], kinds
    # nothing was changed by looking
    assert not ss[1].has(n_miss) and ss[0].has(old_extra)

    env.repaird()
    rc, rep = verify(env, "c1", "--repair", "--min-age", "1h")
    assert rc == 0, rep
    r = rep["repair"]
    assert (r["repair_jobs"], r["repaired"], r["repair_failed"]) == (3, 3, 0), r
    assert (r["extra_removed"], r["extra_kept_young"], r["extra_remove_failed"]) == (1, 1, 0), r
    for oid, name, data in objs:
        for s in ss:
            st_, body = s.get(name)
            assert st_ == 200 and md5hex(body) == md5hex(data), (s.name, name)
    assert not ss[0].has(old_extra), "old extra file not removed"
    assert ss[1].has(young_extra), "a young extra file was removed"
    assert all(s.has(old_version) for s in ss), "a file awaiting its delete job was removed"
    rc, rep = verify(env, "c1", "--min-age", "1h")
    assert rc == 0 and rep["problems"] == 0, rep
    assert by_storage(rep)["c1-s2"]["extra_young"] == 1


def test_quick_checks_sizes_only(env):
    cid, ss = env.add_cluster("c1")
    objs = objects(env, cid, ss, 3)
    bad = bytearray(objs[0][2])
    bad[5] ^= 1
    ss[0].put(objs[0][1], bytes(bad))        # same size: --quick cannot see it
    ss[1].put(objs[1][1], objs[1][2] + b"x")  # longer: it can
    http("DELETE", ss[2].url(objs[2][1]))
    rc, rep = verify(env, "c1", "--quick")
    st = by_storage(rep)
    assert rc == 1 and rep["bytes_read"] == 0, rep
    assert (st["c1-s1"]["corrupt"], st["c1-s2"]["corrupt"], st["c1-s3"]["missing"]) == (0, 1, 1)
    rc, rep = verify(env, "c1")
    assert by_storage(rep)["c1-s1"]["corrupt"] == 1, rep


def test_unreadable_storage_makes_it_incomplete(env):
    cid, ss = env.add_cluster("c1")
    objects(env, cid, ss, 2)
    env.sql("UPDATE storages SET mode = 'down' WHERE id = %d" % ss[2].id)
    ss[1].stop()
    rc, rep = verify(env, "c1")
    st = by_storage(rep)
    assert rc == 1 and not rep["complete"], rep
    assert not st["c1-s3"]["checked"], st  # down: not checked, and not an error
    assert not st["c1-s2"]["manifest_ok"] and st["c1-s2"]["unchecked"] == 2, st
    assert st["c1-s1"]["files"] == 2 and rep["problems"] == 0, st
    p = env.run([CLUSTERCTL, "-c", env.conf, "verify", "nosuch"], check=False)
    assert p.returncode == 1 and "no cluster named 'nosuch'" in p.stderr, p.stderr
    p = env.run([CLUSTERCTL, "-c", env.conf, "verify", "c1", "--min-age", "soon"], check=False)
    assert p.returncode == 2, p.stderr


def test_a_file_of_another_clusters_object_is_extra(env):
    """What a move left behind (the object lives in another cluster now) is extra here."""
    c1, s1 = env.add_cluster("c1")
    c2, s2 = env.add_cluster("c2")
    oid, name = env.add_object(c2, b"moved away" * 50, s2)
    s1[0].put(name, b"moved away" * 50)
    rc, rep = verify(env, "c1", "--min-age", "0s")
    assert rc == 1 and by_storage(rep)["c1-s1"]["extra"] == 1, rep
    rc, rep = verify(env, "c2")
    assert rc == 0 and rep["objects"] == 1, rep


if __name__ == "__main__":
    main("verify", [test_clean_cluster_verifies, test_finds_injected_problems_and_repairs_them,
                    test_quick_checks_sizes_only, test_unreadable_storage_makes_it_incomplete,
                    test_a_file_of_another_clusters_object_is_extra],
         repaird_conf={"down_after": "0", "scrub_bytes_per_sec": "0"})
