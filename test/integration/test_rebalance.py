"""test/integration/test_rebalance.py — `clusterctl rebalance` with the real dispatcher, repaird,
storaged, PostgreSQL and Redis: after a third, empty cluster is added, objects move into it and
every object stays readable with the same bytes throughout, while clients overwrite and delete
objects; an object overwritten or deleted in the middle of its move is left alone (its new
version wins, the copies made for the move are removed); nothing moves outside the window; a
repaird killed mid-run is replaced and the run finishes without leaving garbage."""
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402

CLUSTERCTL = procs.build_path("clusterctl", "clusterctl")


def make_system(p):
    """Two clusters of three storaged, a dispatcher, and a config whose [repaird] deletes the
    old copies of a moved object one second after the switch and does not scrub."""
    s = de.System(p, clusters=2)
    s.sql("TRUNCATE rebalances, rebalance_moves RESTART IDENTITY")
    with open(s.conf, "a") as f:  # [repaird] is the last section of the file
        f.write("rebalance_delete_delay = 1s\nscrub_bytes_per_sec = 0\n")
    return s


def hhmm(minutes):
    minutes %= 1440
    return "%02d:%02d" % (minutes // 60, minutes % 60)


def window_now():
    """A window around the current local time."""
    t = time.localtime()
    now = t.tm_hour * 60 + t.tm_min
    return "%s-%s" % (hhmm(now - 60), hhmm(now + 60))


def window_not_now():
    """A window that closed an hour ago and opens in three hours."""
    t = time.localtime()
    now = t.tm_hour * 60 + t.tm_min
    return "%s-%s" % (hhmm(now + 180), hhmm(now - 60))


def upload(s, n, size_range, bucket="b"):
    """n objects named o000... with random bytes; returns {name: bytes}."""
    assert s.req("PUT", "/" + bucket)[0] in (201, 204)
    out = {}
    for i in range(n):
        data = os.urandom(random.randint(*size_range))
        st, _, body = s.put("/%s/o%03d" % (bucket, i), data)
        assert st == 201, (st, body)
        out["o%03d" % i] = data
    return out


def cluster_bytes(s):
    return {c: int(b) for c, b in s.sql(
        "SELECT c.name, coalesce(sum(o.size), 0) FROM clusters c LEFT JOIN objects o "
        "ON o.cluster_id = c.id GROUP BY c.name")}


def progress(s):
    """(run state, moved, skipped, failed, planned objects) of the last rebalance."""
    row = s.sql("SELECT r.state, coalesce(sum(m.moved_objects), 0), "
                "coalesce(sum(m.skipped_objects), 0), coalesce(sum(m.failed_objects), 0), "
                "coalesce(sum(m.planned_objects), 0) FROM rebalances r LEFT JOIN "
                "rebalance_moves m ON m.rebalance_id = r.id GROUP BY r.id ORDER BY r.id DESC "
                "LIMIT 1")
    if not row:
        return None
    st, moved, skipped, failed, planned = row[0]
    return st, int(moved), int(skipped), int(failed), int(planned)


def settle(s, timeout=30.0):
    """Waits until no job runs or is due (guard jobs of cut-short copies wait an hour)."""
    procs.poll(lambda: s.sql_one("SELECT count(*) FROM jobs WHERE state = 'running' OR "
                                 "(state = 'pending' AND run_after <= now())") == "0",
               timeout=timeout, what="due background jobs to settle")


def verify_clean(s, cluster):
    """`clusterctl verify CLUSTER --json` finds nothing wrong (after the jobs settled)."""
    r = s.ctl("verify", cluster, "--json", "--min-age", "0s", check=False)
    rep = json.loads(r.stdout)
    assert r.returncode == 0 and rep["problems"] == 0 and rep["complete"], (r.stdout, r.stderr)
    return rep


def files_of_cluster(s, cluster):
    names = set()
    for st in s.clusters[cluster]:
        names |= set(st.files())
    return names


def test_dry_run_then_rebalance_under_load():
    with procs.Procs() as p:
        s = make_system(p)
        s.start_repaird()
        data = upload(s, 60, (1000, 48000))
        before = dict((n, s.object_row("b", n)[0]) for n in data)
        # two clusters of the same size, roughly even: balanced within a wide tolerance
        r = s.ctl("rebalance", "--dry-run", "--tolerance", "40")
        assert "nothing to move" in r.stdout, r.stdout
        s.add_cluster("c3")
        r = s.ctl("rebalance", "--dry-run", "--json", "--window", window_now())
        plan = json.loads(r.stdout)
        assert plan["rebalance_id"] is None and not plan["balanced"], plan
        assert {m["to"] for m in plan["moves"]} == {"c3"}, plan["moves"]
        assert {m["from"] for m in plan["moves"]} <= {"c1", "c2"}, plan["moves"]
        assert plan["total_objects"] > 0 and plan["total_bytes"] > 0, plan
        r = s.ctl("rebalance", "--dry-run", "--window", window_now())
        assert "c1" in r.stdout and "c3" in r.stdout and "total:" in r.stdout, r.stdout
        assert s.sql_one("SELECT count(*) FROM rebalances") == "0", "dry-run recorded a run"
        assert cluster_bytes(s)["c3"] == 0

        names = sorted(data)
        stable = names[0::2]
        overwrite = names[1::4]
        delete = names[3::4]
        failures, reads, ops_during = [], [0], [0]
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                for n in stable:
                    st, _, body = s.req("GET", "/b/" + n)
                    reads[0] += 1
                    if st != 200 or body != data[n]:
                        failures.append((n, st, len(body)))

        def writer():
            procs.poll(lambda: (progress(s) or ("", 0))[1] >= 1, timeout=30,
                       what="the first object to move")
            for i, n in enumerate(overwrite + delete):
                if n in overwrite:
                    new = os.urandom(random.randint(1000, 48000))
                    assert s.put("/b/" + n, new)[0] == 201
                    data[n] = new
                else:
                    assert s.req("DELETE", "/b/" + n)[0] == 204
                    data[n] = None
                if progress(s)[0] == "running":
                    ops_during[0] += 1
                time.sleep(0.05)

        threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
        run = subprocess.Popen([CLUSTERCTL, "-c", s.conf, "rebalance", "--window", window_now(),
                                "--max-bytes-per-sec", "256K", "--wait"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for t in threads:
                t.start()
            out, err = run.communicate(timeout=50)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
            if run.poll() is None:
                run.kill()
        assert run.returncode == 0, (out, err)
        assert "rebalance 1 done" in out and "c3" in out, out
        assert not failures, "reads failed during the rebalance: %s" % failures[:5]
        assert reads[0] > len(stable), reads
        assert ops_during[0] >= 5, "overwrites/deletes did not overlap the rebalance"

        st, moved, skipped, failed, planned = progress(s)
        assert st == "done" and moved > 0 and failed == 0, progress(s)
        assert cluster_bytes(s)["c3"] > 0
        settle(s)
        for n, want in data.items():
            st, _, body = s.req("GET", "/b/" + n)
            if want is None:
                assert st == 404, (n, st)
            else:
                assert (st, body) == (200, want), (n, st, len(body))
        moved_rows = s.sql("SELECT o.name, o.internal_name FROM objects o JOIN clusters c ON "
                           "c.id = o.cluster_id WHERE c.name = 'c3' AND o.name = ANY('{%s}')"
                           % ",".join(stable))
        assert moved_rows, "no stable object moved to c3"
        for n, internal in moved_rows:
            assert internal != before[n], "%s kept its internal name on the move" % n
        for c in ("c1", "c2", "c3"):
            verify_clean(s, c)


def test_overwrite_and_delete_in_the_middle_of_a_move():
    """A move is slow (its own throttle): the object being moved is overwritten, the next one
    deleted, each while its copy is being written to c3. Both are skipped, the new version
    stays, the copies made for the moves are removed by their guard jobs."""
    with procs.Procs() as p:
        s = make_system(p)
        rep = s.start_repaird()
        data = upload(s, 8, (120 << 10, 128 << 10))
        s.add_cluster("c3")
        r = s.ctl("rebalance", "--window", window_now(), "--max-bytes-per-sec", "128K")
        assert "rebalance 1 started" in r.stdout, r.stdout

        def guard(after=0):
            row = s.sql("SELECT id, payload ->> 'object_id', payload ->> 'internal_name' "
                        "FROM jobs WHERE kind = 'delete_files' AND payload ->> 'why' = "
                        "'rebalance copy guard' AND id > %d ORDER BY id LIMIT 1" % after)
            return row[0] if row else None

        def object_name(oid):
            return s.sql_one("SELECT name FROM objects WHERE id = %s" % oid)

        g1 = procs.poll(guard, timeout=30, what="the first move's copy to begin")
        n1 = object_name(g1[1])
        new = os.urandom(50000)
        assert s.put("/b/" + n1, new)[0] == 201
        data[n1] = new
        g2 = procs.poll(lambda: guard(int(g1[0])), timeout=30, what="the second move's copy")
        n2 = object_name(g2[1])
        assert s.req("DELETE", "/b/" + n2)[0] == 204
        data[n2] = None
        r = s.ctl("rebalance", "--pause")
        assert "paused" in r.stdout, r.stdout
        procs.poll(lambda: "event=rebalance_job_ends" in rep.log_text(), timeout=30,
                   what="the job to stop after the second object")
        st, moved, skipped, failed, _ = progress(s)
        assert (st, moved, skipped, failed) == ("paused", 0, 2, 0), progress(s)
        log = rep.log_text()
        assert log.count("event=rebalance_object_skipped") == 2, log
        # the guards fired: the copies written to c3 for the two moves are gone
        settle(s)
        c3_files = files_of_cluster(s, "c3")
        assert g1[2] not in c3_files and g2[2] not in c3_files, c3_files
        assert (s.req("GET", "/b/" + n1)[0], s.req("GET", "/b/" + n1)[2]) == (200, new)
        assert s.req("GET", "/b/" + n2)[0] == 404
        # resumed, it finishes; every object is as the clients left it
        r = s.ctl("rebalance", "--resume", "--max-bytes-per-sec", "0", "--wait")
        assert "rebalance 1 done" in r.stdout, r.stdout
        settle(s)
        for n, want in data.items():
            st, _, body = s.req("GET", "/b/" + n)
            assert st == 404 if want is None else (st, body) == (200, want), (n, st)
        for c in ("c1", "c2", "c3"):
            verify_clean(s, c)


def test_nothing_moves_outside_the_window():
    with procs.Procs() as p:
        s = make_system(p)
        rep = s.start_repaird()
        assert s.req("PUT", "/b")[0] == 201
        assert s.put("/b/empty", b"")[0] == 201  # the oldest object of its cluster: moved first
        data = upload(s, 12, (1000, 20000))
        data["empty"] = b""
        s.add_cluster("c3")
        r = s.ctl("rebalance", "--window", window_not_now())
        assert "is closed now" in r.stdout, r.stdout
        # the job ran (more than once) and waited for the window each time
        procs.poll(lambda: rep.log_text().count("kind=rebalance reason=\"waiting for the "
                                                "window") >= 2,
                   timeout=20, what="the rebalance job to wait for its window twice")
        note = s.sql_one("SELECT note FROM rebalances WHERE id = 1")
        assert note.startswith("waiting for the window"), note
        assert progress(s)[1] == 0
        assert cluster_bytes(s)["c3"] == 0
        assert files_of_cluster(s, "c3") == set(), "files reached c3 outside the window"
        r = s.ctl("rebalance", "--status")
        assert "waiting for the window" in r.stdout, r.stdout
        # one rebalance at a time
        r = s.ctl("rebalance", "--window", window_now(), check=False)
        assert r.returncode == 1 and "refused: rebalance 1 is active" in r.stderr, r.stderr
        r = s.ctl("rebalance", "--pause")
        assert "rebalance 1 paused" in r.stdout, r.stdout
        assert "rebalance 1: paused" in s.ctl("rebalance", "--status").stdout
        # a window that includes now: it moves at once
        r = s.ctl("rebalance", "--resume", "--window", window_now(), "--wait")
        assert "rebalance 1 done" in r.stdout, r.stdout
        r = s.ctl("rebalance", "--cancel", check=False)
        assert r.returncode == 1 and "no rebalance is running or paused" in r.stderr, r.stderr
        assert progress(s)[1] > 0 and cluster_bytes(s)["c3"] > 0
        settle(s)
        for n, want in data.items():
            assert s.req("GET", "/b/" + n)[:3:2] == (200, want), n
        assert s.object_row("b", "empty")[1] == "c3", "the empty object did not move"
        verify_clean(s, "c3")


def test_repaird_killed_mid_run_resumes_without_garbage():
    with procs.Procs() as p:
        s = make_system(p)
        rep = s.start_repaird("repaird-a")
        data = upload(s, 16, (60 << 10, 64 << 10))
        s.add_cluster("c3")
        r = s.ctl("rebalance", "--window", window_now(), "--max-bytes-per-sec", "512K")
        assert "started" in r.stdout, r.stdout
        procs.poll(lambda: progress(s)[1] >= 2, timeout=30, what="two objects to move")
        rep.kill9()
        moved_at_kill = progress(s)[1]
        s.start_repaird("repaird-b")
        r = s.ctl("rebalance", "--status", "--wait")
        assert "rebalance 1 done" in r.stdout, (r.stdout, r.stderr)
        st, moved, skipped, failed, planned = progress(s)
        assert moved > moved_at_kill and failed == 0, progress(s)
        settle(s)
        for n, want in data.items():
            st, _, body = s.req("GET", "/b/" + n)
            assert (st, body) == (200, want), (n, st)
        # each object is in exactly one cluster, once; a copy cut short by the kill is either
        # gone or awaits its guard job (verify counts it as pending, not extra)
        for c in ("c1", "c2", "c3"):
            verify_clean(s, c)
        assert s.sql_one("SELECT count(*) FROM objects") == str(len(data))


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
