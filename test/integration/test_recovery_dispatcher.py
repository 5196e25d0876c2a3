"""test/integration/test_recovery_dispatcher.py — a disk replacement with the whole system
running (dispatcher, repaird, storaged, clusterctl, PostgreSQL, Redis): objects are written
through the dispatcher, a disk dies and is replaced empty, objects are overwritten and deleted
meanwhile, `clusterctl repair --wait` rebuilds it while every object stays readable through the
dispatcher, and afterwards the rebuilt disk alone serves every live object of its cluster and
holds nothing else."""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("STF_SRC", ""), "test", "harness"))
import dispatcher_env  # noqa: E402
import procs  # noqa: E402


def live_in(s, cluster):
    return {r[0] for r in s.sql("SELECT o.internal_name FROM objects o JOIN clusters c "
                                "ON c.id = o.cluster_id WHERE c.name = '%s'" % cluster)}


def test_disk_replacement_through_the_dispatcher():
    with procs.Procs() as p:
        s = dispatcher_env.System(p, clusters=2)
        with open(s.conf) as f:
            conf = f.read().replace("max_bytes_per_sec = 0", "max_bytes_per_sec = 1M")
        with open(s.conf, "w") as f:
            f.write(conf)
        st, _, body = s.req("PUT", "/b1")
        assert st in (201, 204), (st, body)
        objects = {}
        for i in range(120):
            data = os.urandom(30000 + i * 300)
            st, _, body = s.req("PUT", "/b1/obj-%03d" % i, data)
            assert st == 201, (st, body)
            objects["obj-%03d" % i] = data
        c1 = s.clusters["c1"]
        dead = c1[2]
        in_c1 = live_in(s, "c1")
        assert len(in_c1) > 20, "want a good share of the objects in c1"
        # the disk dies and is replaced by an empty one
        s.ctl("mark-down", dead.name, "--reason", "disk died")
        dead.daemon.stop()
        shutil.rmtree(dead.root)
        dead.start(dead.port)
        repaird = s.start_repaird()
        repaird.wait_log(r"event=health_checks_started")
        # meanwhile: overwrites (c1 is ro: new versions go to c2) and deletes
        names = sorted(objects)
        for name in names[:15]:
            data = os.urandom(20000)
            st, _, body = s.req("PUT", "/b1/" + name, data)
            assert st == 201, (st, body)
            objects[name] = data
        for name in names[15:30]:
            st, _, _ = s.req("DELETE", "/b1/" + name)
            assert st == 204
            del objects[name]
        follower = subprocess.Popen([procs.build_path("clusterctl", "clusterctl"), "-c",
                                     s.conf, "repair", dead.name, "--wait", "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            reads = 0
            deadline = time.monotonic() + 120
            while follower.poll() is None and time.monotonic() < deadline:
                for name, data in objects.items():  # every read works during the copy
                    st, _, body = s.req("GET", "/b1/" + name)
                    assert st == 200 and body == data, (name, st)
                    reads += 1
            out, err = follower.communicate(timeout=60)
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
        assert follower.returncode == 0, (out[-2000:], err)
        lines = [json.loads(x) for x in out.splitlines()]
        assert lines[-1]["event"] == "done" and lines[-1]["mode"] == "rw", lines[-1]
        assert any(x["phase"] == "copy" and x["state"] == "running" for x in lines), lines[:3]
        assert reads > len(objects), "reads must have gone on during the copy"
        procs.poll(lambda: s.sql_one("SELECT count(*) FROM jobs WHERE state NOT IN "
                                     "('done', 'failed')") == "0",
                   timeout=30, what="the delete jobs")
        status = json.loads(s.ctl("status", "--json").stdout)
        assert {c["name"]: c["mode"] for c in status["clusters"]}["c1"] == "rw", status
        # the rebuilt disk holds exactly c1's live objects ...
        assert set(dead.files()) == live_in(s, "c1"), set(dead.files()) ^ live_in(s, "c1")
        # ... and alone serves every one of them
        for other in c1[:2]:
            s.ctl("mark-down", other.name, "--reason", "prove the rebuilt copy")
        procs.poll(lambda: s.req("GET", "/b1/" + next(iter(objects)))[0] == 200,
                   what="the dispatcher to see the new modes")
        for name, data in objects.items():
            st, _, body = s.req("GET", "/b1/" + name)
            assert st == 200 and body == data, (name, st)


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
