"""test/integration/test_dispatcher_placement.py — where writes go and what happens when
storages fail: three identical copies on the three disks of one cluster, rendezvous placement
over both clusters, writes moving to the next cluster when a member is dead or the cluster is not
rw, retries from the spool when a storage dies mid-upload, copies of failed attempts removed (or
recorded for repaird), spares, reads surviving a killed storage (with a repair queued), and 503
only when no cluster can take a write. Real storaged, PostgreSQL, Redis."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402


def holders(s, internal):
    """Storage names holding a file named internal, with its bytes."""
    return {n: fs[internal] for n, fs in s.all_files().items() if internal in fs}


def assert_on_cluster(s, bucket, name, data):
    row = s.object_row(bucket, name)
    assert row is not None, "no row for %s/%s" % (bucket, name)
    internal, cluster, size, etag = row
    assert size == len(data) and etag == de.md5hex(data)
    h = holders(s, internal)
    expect = {st.name for st in s.clusters[cluster]}
    assert set(h) == expect, "copies of %s on %s, want %s" % (name, sorted(h), sorted(expect))
    assert all(v == data for v in h.values()), "copies differ from the upload"
    return cluster


def test_copies_spread_and_rendezvous():
    with procs.Procs() as p:
        s = de.System(p, clusters=2)
        assert s.req("PUT", "/b")[0] == 201
        counts = {"c1": 0, "c2": 0}
        for i in range(40):
            data = os.urandom([0, 1, 1000, 300 * 1024, 1 << 20][i % 5] + i)
            name = "obj/%d" % i
            st, h, _ = s.put("/b/" + name, data)
            assert st == 201, st
            cluster = assert_on_cluster(s, "b", name, data)
            assert cluster == de.write_order(s, "b/" + name)[0], \
                "%s not on its rendezvous choice" % name
            counts[cluster] += 1
        assert counts["c1"] > 0 and counts["c2"] > 0, counts
        m = s.metrics()
        assert m["stf_dispatcher_cluster_fallbacks_total"] == 0


def test_dead_member_moves_writes_and_reads_survive():
    with procs.Procs() as p:
        s = de.System(p, clusters=2)
        s.req("PUT", "/b")
        before = {}
        for i in range(20):
            data = os.urandom(5000 + i)
            assert s.put("/b/pre%d" % i, data)[0] == 201
            before["pre%d" % i] = data
        on_c1 = {n: d for n, d in before.items() if s.object_row("b", n)[1] == "c1"}
        assert on_c1, "no object landed on c1"
        victim = s.clusters["c1"][0]
        victim.kill()
        survivors = [st for st in s.clusters["c1"] if st is not victim]
        files_before = {st.name: set(st.files()) for st in survivors}
        # writes: every one succeeds, none on c1 (its member is dead, its mode still rw)
        moved = 0
        for i in range(30):
            data = os.urandom(2000 + i)
            name = "post%d" % i
            st, _, body = s.put("/b/" + name, data)
            assert st == 201, (st, body)
            assert assert_on_cluster(s, "b", name, data) == "c2"
            moved += de.write_order(s, "b/" + name)[0] == "c1"
        assert moved > 0, "no write preferred c1: the test proves nothing"
        m = s.metrics()
        assert m["stf_dispatcher_cluster_fallbacks_total"] == moved, m
        # copies made on c1's live members by the failed attempts are removed
        de.wait_until(lambda: all(set(st.files()) == files_before[st.name] for st in survivors),
                      what="failed attempts' copies to be removed from c1", timeout=15)
        # reads survive: every object of c1 is served from the other copies
        failovers = 0
        for n, data in on_c1.items():
            st, _, body = s.req("GET", "/b/" + n)
            assert (st, body) == (200, data), (n, st)
            internal = s.object_row("b", n)[0]
            failovers += de.read_order(s, internal, "c1")[0] == victim.name
        # a read that needed failover queues a repair of that object
        ids = {int(s.sql_one("SELECT o.id FROM objects o WHERE o.name = '%s'" % n))
               for n in on_c1
               if de.read_order(s, s.object_row("b", n)[0], "c1")[0] == victim.name}
        de.wait_until(lambda: {json.loads(j[3])["object_id"] for j in s.jobs("repair_object")}
                      >= ids, what="repair jobs for the failed-over reads")
        assert s.metrics()["stf_dispatcher_failover_reads_total"] == failovers
        # ranges fail over too
        n, data = next(iter(on_c1.items()))
        st, _, body = s.req("GET", "/b/" + n, headers={"Range": "bytes=100-199"})
        assert (st, body) == (206, data[100:200])


def wait_writes_avoid(s, cluster, prefix):
    """Polls (no fixed sleep) until a write that prefers cluster lands elsewhere: the
    dispatcher has taken the mode change. Returns the probe names used."""
    probes = [n for n in ("%s%d" % (prefix, i) for i in range(400))
              if de.write_order(s, "b/" + n)[0] == cluster]
    used = []

    def landed_elsewhere():
        name = probes[len(used)]
        used.append(name)
        assert s.put("/b/" + name, b"probe")[0] == 201
        return s.object_row("b", name)[1] != cluster
    de.wait_until(landed_elsewhere, what="writes to leave %s" % cluster, timeout=5)
    return used


def test_cluster_not_rw_takes_no_writes():
    with procs.Procs() as p:
        s = de.System(p, clusters=2)
        s.req("PUT", "/b")
        s.ctl("cluster", "mark-ro", "c1", "--reason", "test")
        wait_writes_avoid(s, "c1", "probe-a")
        for i in range(20):
            data = os.urandom(100)
            assert s.put("/b/x%d" % i, data)[0] == 201
            assert assert_on_cluster(s, "b", "x%d" % i, data) == "c2"
        # a storage going down makes its cluster ro as well
        s.ctl("cluster", "mark-rw", "c1")
        s.ctl("mark-down", "c2-s2", "--reason", "test")
        wait_writes_avoid(s, "c2", "probe-b")
        for i in range(20):
            data = os.urandom(100)
            assert s.put("/b/y%d" % i, data)[0] == 201
            assert assert_on_cluster(s, "b", "y%d" % i, data) == "c1"
        # reads of c2's objects go on from its readable members
        for i in range(5):
            assert s.req("GET", "/b/x%d" % i)[0] == 200
        # no rw cluster at all: 503, nothing stored
        s.ctl("cluster", "mark-ro", "c1")
        probes = iter("probe-c%d" % i for i in range(1000))
        de.wait_until(lambda: s.put("/b/" + next(probes), b"x")[0] == 503,
                      what="writes to be refused")
        st, _, body = s.put("/b/z", b"nowhere")
        assert st == 503, (st, body)
        assert s.object_row("b", "z") is None


def test_storage_dies_mid_upload_retries_from_spool():
    with procs.Procs() as p:
        s = de.System(p, clusters=2, conf={"max_object_size": "256M"})
        s.req("PUT", "/b")
        # a name whose first choice is c1
        name = next("big%d" % i for i in range(100) if de.write_order(s, "b/big%d" % i)[0] == "c1")
        data = os.urandom(24 << 20)
        result = {}

        def upload():
            with socket.create_connection((s.host, s.port), timeout=60) as c:
                c.sendall(b"PUT /b/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                          % (name.encode(), len(data)))
                for off in range(0, len(data), 1 << 20):
                    c.sendall(data[off:off + (1 << 20)])
                    if off == 4 << 20:
                        result["half"] = True
                        while "killed" not in result:
                            time.sleep(0.01)
                result["resp"] = procs.read_response(c)

        t = threading.Thread(target=upload)
        t.start()
        de.wait_until(lambda: "half" in result, what="the upload to be under way")
        victim = s.clusters["c1"][1]
        victim.kill()
        result["killed"] = True
        t.join(60)
        assert result["resp"].status == 201, result["resp"]
        assert assert_on_cluster(s, "b", name, data) == "c2"
        assert "attempt=2" in s.dispatchers[0].log_text()
        # nothing of it stays on c1's live members (partial uploads never become files)
        for st in s.clusters["c1"]:
            if st is not victim:
                assert not any(v == data for v in st.files().values()), st.name


def test_failed_attempt_copies_are_removed_or_recorded():
    with procs.Procs() as p:
        s = de.System(p, clusters=0, dispatcher=False)
        bad = de.FakeStorage(put="500")
        wrong = de.FakeStorage(put="bad_etag")
        keep = de.FakeStorage(put="ok", delete="500")
        bad2 = de.FakeStorage(put="500")
        try:
            s.add_cluster("cx", per_cluster=2, fakes=[bad])      # a copy fails with 500
            s.add_cluster("cw", per_cluster=2, fakes=[wrong])    # a copy has a wrong MD5
            s.add_cluster("cz", per_cluster=1, fakes=[keep, bad2])  # cleanup cannot finish
            s.add_cluster("cy", per_cluster=3)
            s.start_dispatcher()
            s.req("PUT", "/b")
            names = {}
            for i in range(60):
                n = "o%d" % i
                names.setdefault(de.write_order(s, "b/" + n)[0], []).append(n)
            assert all(names.get(c) for c in ("cx", "cw", "cz")), names
            stored = {}
            for c in ("cx", "cw", "cz"):
                for n in names[c][:3]:
                    data = os.urandom(70000)
                    st, _, body = s.put("/b/" + n, data)
                    assert st == 201, (st, body)
                    stored[n] = data
            for n, data in stored.items():
                cluster = s.object_row("b", n)[1]
                assert cluster not in ("cx", "cw", "cz"), (n, cluster)
                if cluster == "cy":
                    assert_on_cluster(s, "b", n, data)
            # the real members of the failing clusters end up without any copy
            failing = [st for c in ("cx", "cw", "cz") for st in s.clusters[c]]
            de.wait_until(lambda: all(not st.files() for st in failing),
                          what="copies of failed attempts to be removed", timeout=15)
            # where a copy could not be removed, a delete_files job says so (durably)
            cz = int(s.sql_one("SELECT id FROM clusters WHERE name = 'cz'"))
            de.wait_until(lambda: sum(1 for j in s.jobs("delete_files")
                                      if json.loads(j[3])["cluster_id"] == cz) >= 3,
                          what="delete_files jobs for the copies cz could not remove")
            assert keep.files, "the fake kept no copy: the test proves nothing"
            assert s.metrics()["stf_dispatcher_cleanups_deferred_total"] >= 3
        finally:
            for f in (bad, wrong, keep, bad2):
                f.close()


def test_spares_receive_copies_and_failures_are_repaired():
    with procs.Procs() as p:
        s = de.System(p, clusters=2, spares=1)
        s.req("PUT", "/b")
        data = os.urandom(4000)
        assert s.put("/b/a", data)[0] == 201
        internal, cluster, _, _ = s.object_row("b", "a")
        assert set(holders(s, internal)) == {st.name for st in s.clusters[cluster]}
        assert len(s.clusters[cluster]) == 4
        spare = [st for st in s.clusters["c1"] if st.spare][0]
        spare.kill()
        name = next("sp%d" % i for i in range(100) if de.write_order(s, "b/sp%d" % i)[0] == "c1")
        assert s.put("/b/" + name, data)[0] == 201
        internal, cluster, _, _ = s.object_row("b", name)
        assert cluster == "c1", "a failed spare must not fail the write"
        assert set(holders(s, internal)) == {st.name for st in s.clusters["c1"]} - {spare.name}
        oid = int(s.sql_one("SELECT id FROM objects WHERE internal_name = '%s'" % internal))
        de.wait_until(lambda: any(json.loads(j[3]) == {"object_id": oid}
                                  for j in s.jobs("repair_object")),
                      what="a repair job for the spare's missing copy")
        assert s.metrics()["stf_dispatcher_spare_failures_total"] == 1


def test_no_cluster_can_take_it():
    with procs.Procs() as p:
        s = de.System(p, clusters=2)
        s.req("PUT", "/b")
        s.clusters["c1"][2].kill()
        s.clusters["c2"][0].kill()
        live = [st for st in s.storages if st.daemon.alive()]
        st, _, body = s.put("/b/x", os.urandom(100000))
        assert st == 503, (st, body)
        assert s.object_row("b", "x") is None
        de.wait_until(lambda: not any(st.files() for st in live),
                      what="no copy left anywhere", timeout=15)
        assert s.metrics()["stf_dispatcher_writes_unavailable_total"] == 1


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
