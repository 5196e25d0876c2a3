"""test/integration/test_dispatcher_cleanup.py — no file is left behind: after overwrites,
deletes, moves, bucket deletions and failed write attempts, once the real repaird has run the
background work, the storages hold exactly the files of the live objects (each on every member
of its cluster) and nothing else. Real storaged, PostgreSQL, Redis, repaird."""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402


def expected_files(s):
    """{storage name: {internal name}} the live rows call for (deleted buckets included
    until their purge: they are not live)."""
    want = {st.name: set() for st in s.storages}
    rows = s.sql("SELECT o.internal_name, c.name FROM objects o JOIN clusters c ON "
                 "c.id = o.cluster_id JOIN buckets b ON b.id = o.bucket_id "
                 "WHERE b.deleted_at IS NULL")
    for internal, cluster in rows:
        for st in s.clusters[cluster]:
            want[st.name].add(internal)
    return want


def assert_exactly_live_files(s):
    want = expected_files(s)
    got = {name: set(fs) for name, fs in s.all_files().items()}
    for name in want:
        extra = got[name] - want[name]
        missing = want[name] - got[name]
        assert not extra and not missing, "%s: extra %s missing %s" % (name, sorted(extra),
                                                                        sorted(missing))


def test_no_files_left_behind():
    with procs.Procs() as p:
        s = de.System(p, clusters=2)
        s.start_repaird()
        for b in ("keep", "gone"):
            assert s.req("PUT", "/" + b)[0] == 201
        for i in range(30):
            assert s.put("/keep/o%d" % i, os.urandom(3000 + i))[0] == 201
            assert s.put("/gone/o%d" % i, os.urandom(100))[0] == 201
        # overwrites (some twice), deletes, moves, an overwriting move
        for i in range(0, 30, 2):
            assert s.put("/keep/o%d" % i, os.urandom(2000))[0] == 201
        for i in range(0, 30, 4):
            assert s.put("/keep/o%d" % i, b"third version")[0] == 201
        for i in range(1, 30, 3):
            assert s.req("DELETE", "/keep/o%d" % i)[0] == 204
        assert s.req("MOVE", "/keep/o0", headers={"X-STF-Move-Destination": "/keep/moved"}
                     )[0] == 201
        assert s.req("MOVE", "/keep/o2", headers={"X-STF-Move-Destination": "/keep/o5",
                                                  "X-STF-Overwrite": "T"})[0] == 201
        # a whole bucket
        assert s.req("DELETE", "/gone")[0] == 204
        # failed attempts: a dead member of c1 makes writes fall over to c2
        victim = s.clusters["c1"][0]
        victim.kill()
        for i in range(10):
            assert s.put("/keep/late%d" % i, os.urandom(50000))[0] == 201
        victim.start()  # back on the same port and disk: its leftovers must go too
        de.wait_settled(s, timeout=60)
        de.wait_until(lambda: s.sql_one("SELECT count(*) FROM jobs WHERE state = 'failed'")
                      == "0", what="no failed job")
        assert_exactly_live_files(s)
        live = int(s.sql_one("SELECT count(*) FROM objects o JOIN buckets b ON b.id = "
                             "o.bucket_id WHERE b.deleted_at IS NULL"))
        assert live == 30 - 10 - 1 + 10, live  # 30, 10 deleted, 1 replaced by a move, 10 late
        # and what is left still reads back
        for i in range(10):
            assert s.req("GET", "/keep/late%d" % i)[0] == 200
        assert s.req("GET", "/keep/moved")[2] == b"third version"
        assert s.req("GET", "/keep/o5")[0] == 200


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
