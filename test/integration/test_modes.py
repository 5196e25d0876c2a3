#!/usr/bin/env python3
"""test/integration/test_modes.py — the mode state machine through the real clusterctl against a
real PostgreSQL and Redis (run under with-services.sh): every cell of the SPEC §4 table, history
rows, forced cluster modes, removals, effective modes in `status --json`, `history`, `jobs`,
concurrent conflicting changes, row locks, Redis notices, exit codes and exact messages."""

import json
import os
import pwd
import random
import re
import socket
import subprocess
import sys
import time

BUILD = os.environ["STF_BUILD"]
CTL = os.path.join(BUILD, "clusterctl", "clusterctl")
PSQL = os.path.join(os.environ["SVC_PGBIN"], "psql")
REDIS_HOST = os.environ.get("REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ["REDIS_PORT"])

MODES = ["rw", "ro", "down", "spare", "repair"]
# SPEC §4: from -> to -> yes | star (empty cluster or --force) | repaird | no
TABLE = {
    "rw": {"ro": "yes", "down": "yes", "spare": "star", "repair": "no"},
    "ro": {"rw": "yes", "down": "yes", "spare": "star", "repair": "no"},
    "down": {"rw": "no", "ro": "no", "spare": "yes", "repair": "yes"},
    "spare": {"rw": "star", "ro": "no", "down": "yes", "repair": "yes"},
    "repair": {"rw": "repaird", "ro": "no", "down": "yes", "spare": "no"},
}

failures = []
checks = 0


def check(cond, what, detail=""):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}" + (f"\n      {detail}" if detail else ""), flush=True)


def os_user():
    sudo = os.environ.get("SUDO_USER")
    if os.getuid() == 0 and sudo:
        return sudo
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid:{os.getuid()}"


def sql(query):
    """Runs statements through psql (test-controlled text only); returns rows of strings."""
    args = [PSQL, "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1"]
    r = subprocess.run(args, input=query, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()} in {query!r}")
    return [line.split("\t") for line in r.stdout.splitlines() if line != ""]


def sql1(query):
    rows = sql(query)
    return rows[0][0] if rows else None


def ctl(*args, env=None, timeout=60):
    e = dict(os.environ)
    if env:
        e.update(env)
    r = subprocess.run([CTL, *args], capture_output=True, text=True, timeout=timeout, env=e)
    return r.returncode, r.stdout, r.stderr


def expect(args, rc, out=None, err=None, what=None, env=None):
    code, o, e = ctl(*args, env=env)
    label = what or " ".join(args)
    check(code == rc, f"{label}: exit {code}, want {rc}", f"stdout={o!r} stderr={e!r}")
    if out is not None:
        check(o == out, f"{label}: stdout", f"got {o!r}\n      want {out!r}")
    if err is not None:
        check(e == err, f"{label}: stderr", f"got {e!r}\n      want {err!r}")
    return code, o, e


def mode_of(storage):
    return sql1(f"SELECT mode FROM storages WHERE name = '{storage}'")


def set_modes(**modes):
    sql("".join(f"UPDATE storages SET mode = '{mode}' WHERE name = '{name}';\n"
                for name, mode in modes.items()))


def storage_state(name):
    """(mode, number of history rows, last history row) in one query."""
    row = sql(f"SELECT coalesce((SELECT mode FROM storages WHERE name = '{name}'), 'NONE'),"
              f" (SELECT count(*) FROM mode_history WHERE target_name = '{name}'),"
              " h.target_kind, h.from_mode, h.to_mode, h.reason, h.actor, h.program"
              " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT * FROM mode_history WHERE"
              f" target_name = '{name}' ORDER BY id DESC LIMIT 1) h ON true")[0]
    return row[0], int(row[1]), row[2:]


def history_count(name):
    return int(sql1(f"SELECT count(*) FROM mode_history WHERE target_name = '{name}'"))


def last_history(name):
    rows = sql("SELECT target_kind, from_mode, to_mode, reason, actor, program FROM mode_history"
               f" WHERE target_name = '{name}' ORDER BY id DESC LIMIT 1")
    return rows[0] if rows else None


def effective(forced, members):
    """SPEC §4, written out independently of common/modes.c."""
    nrw = sum(1 for m in members if m == "rw")
    readable = any(m in ("rw", "ro") for m in members)
    if nrw >= 3 and all(m in ("rw", "spare") for m in members):
        derived = "rw"
    elif readable:
        derived = "ro"
    else:
        derived = "down"
    order = {"rw": 0, "ro": 1, "down": 2}
    return forced if forced and order[forced] > order[derived] else derived


def refusal(name, frm, to):
    if frm in ("rw", "ro"):
        return (f"{name} is {frm}; only a down or spare storage can be repaired: "
                f"run `clusterctl mark-down {name}` first")
    if frm == "down":
        return (f"{name} is down and may lack objects written while it was away; "
                f"bring it back with `clusterctl repair {name}`")
    if frm == "spare":
        return (f"{name} is a spare and serves no reads until it is complete; "
                f"`clusterctl repair {name}` brings it complete and then to rw")
    if to == "rw":
        return (f"{name} is being repaired; only repaird sets it rw when the recovery succeeds "
                f"(see `clusterctl jobs`; `clusterctl mark-down {name}` aborts it)")
    return (f"{name} is being repaired; it can only go down (abort the repair: "
            f"`clusterctl mark-down {name}`) or, by repaird on success, rw")


def needs_force(name, frm, to):
    if to == "rw":
        return (f"{name} is a spare and its cluster holds objects it may lack; run "
                f"`clusterctl repair {name}`, or `clusterctl mark-rw {name} --force` to accept "
                f"missing copies")
    return (f"{name}'s cluster holds objects; {frm} -> spare takes a readable copy away and "
            f"needs --force")


def force_warning(name, to):
    if to == "rw":
        return (f"{name} may lack objects written before it joined or while it was away; reads "
                f"of those fail over to other copies and queue repairs (`clusterctl verify` "
                f"finds them)")
    return (f"{name} keeps its files but serves no reads as a spare, so its cluster has one "
            f"readable copy less; it cannot become rw again without --force or "
            f"`clusterctl repair {name}`")


def set_objects(cluster, present):
    sql(f"DELETE FROM objects WHERE cluster_id = (SELECT id FROM clusters WHERE name = '{cluster}')")
    if present:
        sql("INSERT INTO buckets (name) SELECT 'bkt' WHERE NOT EXISTS"
            " (SELECT 1 FROM buckets WHERE name = 'bkt' AND deleted_at IS NULL)")
        sql("INSERT INTO objects (bucket_id, name, internal_name, cluster_id, size, etag)"
            " SELECT (SELECT id FROM buckets WHERE name = 'bkt' AND deleted_at IS NULL),"
            f" 'obj-{cluster}', md5('{cluster}' || clock_timestamp()::text),"
            f" (SELECT id FROM clusters WHERE name = '{cluster}'), 3,"
            " 'd41d8cd98f00b204e9800998ecf8427e'")


def add_cluster(name, storages, port_base):
    expect(["cluster", "add", name], 0, what=f"cluster add {name}")
    for i, s in enumerate(storages):
        expect(["storage", "add", s, "--cluster", name, "--uri",
                f"http://127.0.0.1:{port_base + i}"], 0, what=f"storage add {s}")


# ---------------------------------------------------------------------------------------------

def test_every_cell():
    """Every cell of the table through the CLI (operator), with/without objects and --force."""
    add_cluster("cell", ["t1", "t2", "t3", "t4"], 41000)
    user = os_user()
    for objects in (False, True):
        set_objects("cell", objects)
        for frm in MODES:
            for to in MODES:
                for force in (False, True):
                    set_modes(t1=frm, t2="rw", t3="rw", t4="rw")
                    _, before, _ = storage_state("t1")
                    reason = f"cell {frm}->{to} objects={objects} force={force}"
                    label = f"t1 {frm} -> {to} objects={objects} force={force}"
                    if to == "repair":  # refused here: the storages' URIs do not answer
                        code, _, err = ctl("repair", "t1")
                        check(code == 1 and err.count("\n") == 1 and err.startswith(
                            "clusterctl: refused: " + (
                                refusal("t1", frm, to) + "\n" if frm in ("rw", "ro") else
                                "t1 must run on its (new) disk" if frm in ("down", "spare")
                                else "no readable, healthy storage left in cluster cell")),
                            f"{label}: refused", err)
                        mode, count, _ = storage_state("t1")
                        check(mode == frm, f"{label}: mode unchanged")
                        check(count == before, f"{label}: no history row")
                        continue
                    args = [f"mark-{to}", "t1", "--reason", reason] + (["--force"] if force else [])
                    cell = TABLE[frm].get(to, "same")
                    eb = effective(None, [frm, "rw", "rw", "rw"])
                    ea = effective(None, [to, "rw", "rw", "rw"])
                    if cell == "same":
                        expect(args, 0, f"t1 is already {to}\n", "", what=label)
                        allowed = False
                    elif cell == "yes" or (cell == "star" and (not objects or force)):
                        effect = (f"cluster cell: {eb} -> {ea}" if eb != ea
                                  else f"cluster cell stays {ea}")
                        warn = ""
                        if cell == "star" and objects:
                            warn = f"clusterctl: warning (--force): {force_warning('t1', to)}\n"
                        expect(args, 0, f"t1: {frm} -> {to} ({effect})\n", warn, what=label)
                        allowed = True
                    elif cell == "star":
                        expect(args, 1, "", f"clusterctl: refused: {needs_force('t1', frm, to)}\n",
                               what=label)
                        allowed = False
                    else:
                        expect(args, 1, "", f"clusterctl: refused: {refusal('t1', frm, to)}\n",
                               what=label)
                        allowed = False
                    mode, count, last = storage_state("t1")
                    if allowed:
                        check(mode == to, f"{label}: mode is {to}")
                        check(count == before + 1, f"{label}: one history row")
                        check(last == ["storage", frm, to, reason, user, "clusterctl"],
                              f"{label}: history row", repr(last))
                    else:
                        check(mode == frm, f"{label}: mode unchanged ({mode})")
                        check(count == before, f"{label}: no history row")
    set_objects("cell", False)
    set_modes(t1="rw")


def test_cluster_forced():
    before = history_count("cell")
    expect(["cluster", "mark-ro", "cell", "--reason", "maintenance"], 0,
           "cluster cell: forced ro; effective mode rw -> ro\n", "")
    check(sql1("SELECT forced_mode FROM clusters WHERE name = 'cell'") == "ro", "forced_mode ro")
    check(last_history("cell") == ["cluster", "rw", "ro", "maintenance", os_user(), "clusterctl"],
          "cluster history row", repr(last_history("cell")))
    expect(["cluster", "mark-ro", "cell"], 0, "cluster cell is already forced ro\n", "")
    check(history_count("cell") == before + 1, "no-op wrote no history row")
    expect(["cluster", "mark-down", "cell"], 0,
           "cluster cell: forced down; effective mode ro -> down\n", "")
    check(sql1("SELECT forced_mode FROM clusters WHERE name = 'cell'") == "down",
          "forced_mode down")
    set_modes(t2="down")
    expect(["cluster", "mark-rw", "cell"], 0,
           "cluster cell: no longer forced (was down); effective mode down -> ro\n", "")
    check(sql1("SELECT coalesce(forced_mode, 'NULL') FROM clusters WHERE name = 'cell'") == "NULL",
          "forced_mode NULL")
    expect(["cluster", "mark-rw", "cell"], 0,
           "cluster cell is already rw (not forced lower; effective mode ro)\n", "")
    expect(["cluster", "mark-ro", "cell"], 0, "cluster cell: forced ro; effective mode stays ro\n",
           "")
    expect(["cluster", "mark-rw", "cell"], 0,
           "cluster cell: no longer forced (was ro); effective mode stays ro\n", "")
    set_modes(t2="rw")
    check(history_count("cell") == before + 5, "five cluster history rows")
    expect(["cluster", "mark-ro", "nosuch"], 1, "",
           "clusterctl: no cluster named nosuch (see `clusterctl status`)\n")


def status_json():
    code, out, err = ctl("status", "--json")
    check(code == 0, "status --json exit 0", err)
    return json.loads(out)


def test_effective_in_status():
    add_cluster("eff", ["e1", "e2", "e3", "e4"], 42000)
    cases = [
        (None, dict(e1="rw", e2="rw", e3="rw", e4="rw"), "rw"),
        (None, dict(e1="down", e2="rw", e3="rw", e4="rw"), "ro"),      # one storage down
        (None, dict(e1="spare", e2="rw", e3="rw", e4="rw"), "rw"),     # spare present
        (None, dict(e1="spare", e2="spare", e3="rw", e4="rw"), "ro"),  # fewer than three rw
        (None, dict(e1="ro", e2="rw", e3="rw", e4="rw"), "ro"),
        (None, dict(e1="repair", e2="rw", e3="rw", e4="rw"), "ro"),
        (None, dict(e1="down", e2="down", e3="spare", e4="repair"), "down"),
        ("ro", dict(e1="rw", e2="rw", e3="rw", e4="rw"), "ro"),        # forced modes
        ("down", dict(e1="rw", e2="rw", e3="rw", e4="rw"), "down"),
        ("ro", dict(e1="down", e2="down", e3="down", e4="down"), "down"),
    ]
    for forced, modes, want in cases:
        set_modes(**modes)
        sql("UPDATE clusters SET forced_mode = " + (f"'{forced}'" if forced else "NULL") +
            " WHERE name = 'eff'")
        st = status_json()
        c = [c for c in st["clusters"] if c["name"] == "eff"]
        check(len(c) == 1, "status lists cluster eff")
        if c:
            check(c[0]["mode"] == want, f"status: forced={forced} {modes} -> {want}",
                  f"got {c[0]['mode']}")
            check(c[0]["forced_mode"] == forced, "status: forced_mode")
            got = {s["name"]: s["mode"] for s in c[0]["storages"]}
            check(got == modes, "status: storage modes", repr(got))
    sql("UPDATE clusters SET forced_mode = NULL WHERE name = 'eff'")
    set_modes(e1="rw", e2="rw", e3="rw", e4="rw")
    # after a CLI mark-down the status says ro at once
    expect(["mark-down", "e2"], 0, "e2: rw -> down (cluster eff: rw -> ro)\n", "")
    st = status_json()
    c = [c for c in st["clusters"] if c["name"] == "eff"][0]
    check(c["mode"] == "ro", "status after mark-down: ro")
    check(set(st) == {"clusters", "jobs"} and set(st["jobs"]) == {"pending", "running", "failed"},
          "status --json top-level shape", repr(list(st)))
    check(set(c) == {"name", "mode", "forced_mode", "objects", "bytes", "storages"},
          "status --json cluster keys", repr(list(c)))
    check(all(set(s) == {"name", "mode", "uri", "reachable", "bytes_used", "bytes_free", "files"}
              for s in c["storages"]), "status --json storage keys")


def test_history():
    code, out, err = ctl("history", "t1", "--json")
    check(code == 0, "history t1 --json exit 0", err)
    h = json.loads(out)["history"]
    n = history_count("t1")
    check(len(h) == n, f"history t1: {n} rows", f"got {len(h)}")
    keys = {"id", "time", "kind", "name", "from", "to", "reason", "actor", "program"}
    check(all(set(r) == keys for r in h), "history --json keys", repr(h[:1]))
    check(all(r["name"] == "t1" and r["kind"] == "storage" for r in h), "only t1's rows")
    check(all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["time"]) for r in h),
          "times are ISO 8601 UTC")
    check([r["id"] for r in h] == sorted(r["id"] for r in h), "oldest first")
    check(h[0]["from"] is None and h[0]["to"] == "rw", "first row: storage added")
    code, out, err = ctl("history", "t1", "--limit", "3", "--json")
    h3 = json.loads(out)["history"]
    check([r["id"] for r in h3] == [r["id"] for r in h[-3:]], "--limit 3: the last three")
    code, out, err = ctl("history", "cell")
    lines = out.splitlines()
    check(code == 0 and lines and lines[0].split() == ["TIME", "KIND", "NAME", "FROM", "TO",
                                                        "ACTOR", "PROGRAM", "REASON"],
          "history table header", out[:300])
    check(any("maintenance" in l and " cluster " in l for l in lines), "history shows a reason")
    widths = {len(l.split("  ")[0]) for l in lines[1:]}
    check(len(widths) == 1, "history table columns aligned")
    expect(["history", "nosuch"], 1, "",
           "clusterctl: no storage or cluster named nosuch, and none had that name before\n")
    expect(["history", "--limit", "0"], 2)
    code, out, err = ctl("history", "--json")
    check(code == 0 and len(json.loads(out)["history"]) ==
          min(100, int(sql1("SELECT count(*) FROM mode_history"))), "history of everything")


def test_jobs():
    sql("INSERT INTO jobs (kind, payload, state, attempts, last_error, locked_by, locked_until)"
        " VALUES ('delete_files', '{\"cluster_id\": 7, \"internal_name\": \"abc\"}', 'failed', 5,"
        " 'storage s9 unreachable: connection refused', NULL, NULL),"
        " ('repair_object', '{\"object_id\": 42}', 'pending', 1, 'HTTP 500', NULL, NULL),"
        " ('scrub', '{\"deep\": true, \"note\": null}', 'running', 0, NULL, 'host1:123',"
        " now() + interval '1 minute'),"
        " ('delete_bucket', '{\"bucket_id\": 3}', 'done', 1, NULL, NULL, NULL)")
    sql("UPDATE jobs SET run_after = now() + interval '5 minutes' WHERE kind = 'repair_object'")
    code, out, err = ctl("jobs", "--json")
    check(code == 0, "jobs --json exit 0", err)
    j = json.loads(out)
    check(set(j) == {"jobs", "counts"}, "jobs --json top-level keys")
    check(j["counts"] == {"pending": 1, "running": 1, "failed": 1}, "jobs counts", repr(j["counts"]))
    check([x["kind"] for x in j["jobs"]] == ["scrub", "repair_object", "delete_files"],
          "running, pending, failed; done not shown", repr([x["kind"] for x in j["jobs"]]))
    keys = {"id", "kind", "state", "attempts", "payload", "last_error", "created_at",
            "updated_at", "run_after", "locked_by", "locked_until"}
    check(all(set(x) == keys for x in j["jobs"]), "jobs --json keys", repr(j["jobs"][:1]))
    by = {x["kind"]: x for x in j["jobs"]}
    check(by["delete_files"]["payload"] == {"cluster_id": 7, "internal_name": "abc"},
          "payload with its types", repr(by["delete_files"]["payload"]))
    check(by["scrub"]["payload"] == {"deep": True, "note": None}, "bool and null payload")
    check(by["delete_files"]["last_error"] == "storage s9 unreachable: connection refused" and
          by["delete_files"]["attempts"] == 5, "failed job: attempts and last error")
    check(by["scrub"]["locked_by"] == "host1:123" and by["repair_object"]["locked_by"] is None,
          "lease holder")
    code, out, err = ctl("jobs")
    lines = out.splitlines()
    check(code == 0 and lines[0].split() == ["ID", "KIND", "STATE", "TRIES", "AGE", "DETAIL",
                                             "TARGET", "LAST", "ERROR"], "jobs table header",
          out[:200])
    check(any("retry in 4m" in l or "retry in 5m" in l for l in lines), "pending retry time",
          out)
    check(any("by host1:123" in l for l in lines), "running: lease holder", out)
    check(any("cluster_id=7 internal_name=abc" in l and "connection refused" in l for l in lines),
          "failed job row", out)
    check(lines[-1] == "jobs: 1 pending, 1 running, 1 failed", "jobs summary line", lines[-1])
    code, out, err = ctl("jobs", "--limit", "1")
    check(out.splitlines()[-1] == "jobs: 1 pending, 1 running, 1 failed (1 shown; --limit N "
          "shows more)", "jobs --limit note", out)
    sql("DELETE FROM jobs")


def test_removals():
    add_cluster("rem", ["m1", "m2", "m3", "m4"], 43000)
    set_objects("rem", True)
    expect(["storage", "remove", "m4"], 1, "",
           "clusterctl: refused: m4 holds copies of the objects of cluster rem; removing it drops "
           "those copies (use --force to remove it anyway)\n")
    check(mode_of("m4") == "rw", "refused removal changed nothing")
    set_modes(m3="repair")
    expect(["storage", "remove", "m3", "--force"], 1, "",
           "clusterctl: refused: m3 is being repaired; abort the repair with `clusterctl "
           "mark-down m3` first\n")
    set_modes(m3="rw")
    expect(["storage", "remove", "m4", "--force", "--reason", "disk gone"], 0,
           "removed storage m4 (was rw; cluster rem stays rw)\n",
           "clusterctl: warning (--force): the copies m4 held of cluster rem's objects no longer "
           "count; its files stay on its disk\n")
    check(mode_of("m4") is None, "m4 removed")
    check(last_history("m4") == ["storage", "rw", "removed", "disk gone", os_user(),
                                 "clusterctl"], "removal history row", repr(last_history("m4")))
    expect(["storage", "remove", "m4"], 1, "",
           "clusterctl: no storage named m4 (see `clusterctl status`)\n")
    expect(["cluster", "remove", "rem"], 1, "",
           "clusterctl: refused: cluster rem still has 3 storages (m1, m2, m3); remove them first "
           "with `clusterctl storage remove`\n")
    expect(["storage", "remove", "m3", "--force"], 0,
           "removed storage m3 (was rw; cluster rem: rw -> ro)\n", None)
    for s in ("m1", "m2"):
        expect(["storage", "remove", s, "--force"], 0)
    expect(["cluster", "remove", "rem"], 1, "",
           "clusterctl: refused: cluster rem still holds objects (also counted: objects of deleted "
           "buckets not yet purged)\n")
    set_objects("rem", False)
    sql("INSERT INTO jobs (kind, payload) SELECT 'delete_files', jsonb_build_object('cluster_id',"
        " id, 'internal_name', 'x') FROM clusters WHERE name = 'rem'")
    expect(["cluster", "remove", "rem"], 1, "",
           "clusterctl: refused: 1 background job still refers to cluster rem (see `clusterctl "
           "jobs`)\n")
    sql("UPDATE jobs SET state = 'done'")
    expect(["cluster", "remove", "rem", "--reason", "decommissioned"], 0, "removed cluster rem\n",
           "")
    check(sql1("SELECT count(*) FROM clusters WHERE name = 'rem'") == "0", "cluster rem gone")
    check(last_history("rem") == ["cluster", "rw", "removed", "decommissioned", os_user(),
                                  "clusterctl"], "cluster removal history")
    expect(["cluster", "remove", "rem"], 1, "",
           "clusterctl: no cluster named rem (see `clusterctl status`)\n")
    # an empty cluster's storage goes without --force
    add_cluster("rem2", ["n1"], 43100)
    expect(["storage", "remove", "n1"], 0, "removed storage n1 (was rw; cluster rem2: ro -> down)\n",
           "")
    sql("DELETE FROM jobs")


def test_usage_and_messages():
    usage = "(usage: clusterctl mark-down STORAGE [--reason TEXT] [--force])"
    expect(["mark-down"], 2, "", f"clusterctl: mark-down: missing argument {usage}\n")
    expect(["mark-down", "t1", "t2"], 2, "",
           f"clusterctl: mark-down: unexpected argument 't2' {usage}\n")
    expect(["mark-down", "t1", "--bogus"], 2, "",
           f"clusterctl: mark-down: unknown option '--bogus' {usage}\n")
    expect(["mark-down", "t1", "--reason", "two\nlines"], 2, "",
           f"clusterctl: mark-down: reason must be one line of printable text {usage}\n")
    expect(["mark-down", "t1", "--reason", "x" * 501], 2, "",
           f"clusterctl: mark-down: reason is longer than 500 bytes {usage}\n")
    expect(["mark-down", "bad/name"], 2, "",
           f"clusterctl: mark-down: bad storage name 'bad/name': 1-63 of A-Z a-z 0-9 . _ -, "
           f"starting with a letter or digit {usage}\n")
    expect(["mark-down", "nosuch"], 1, "",
           "clusterctl: no storage named nosuch (see `clusterctl status`)\n")
    check(mode_of("t1") == "rw", "usage errors changed nothing")
    for cmd in (["mark-rw"], ["mark-ro"], ["mark-down"], ["mark-spare"], ["cluster", "mark-rw"],
                ["cluster", "mark-ro"], ["cluster", "mark-down"], ["storage", "remove"],
                ["cluster", "remove"], ["history"], ["jobs"], ["repair"], ["rebalance"],
                ["verify"]):
        code, out, err = ctl(*cmd, "--help")
        check(code == 0 and out.startswith("usage: clusterctl ") and err == "",
              f"{' '.join(cmd)} --help", out[:200] + err)
    code, out, err = ctl("--help")
    for name in ("mark-spare", "cluster mark-down", "storage remove", "cluster remove", "history",
                 "jobs", "repair", "rebalance", "verify"):
        check(f"\n  {name} " in out, f"--help lists {name}")
    # repair, rebalance, verify do not pretend
    expect(["repair", "t1", "--from", "t2", "--wait"], 1, "",
           "clusterctl: refused: " + refusal("t1", mode_of("t1"), "repair") + "\n")
    expect(["rebalance", "--status"], 0, "no rebalance has been run\n")
    expect(["verify", "nosuch", "--repair"], 1, "",
           "clusterctl: refused: no cluster named 'nosuch'\n")
    expect(["rebalance", "--window", "25:00-26:00"], 2)
    expect(["verify"], 2)
    expect(["repair"], 2)


class RedisSub:
    """A minimal RESP subscriber (stdlib socket)."""

    def __init__(self, channel):
        self.s = socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=5)
        self.f = self.s.makefile("rb")
        ch = channel.encode()
        self.s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(ch), ch))
        reply = self.read()
        assert reply[0] == b"subscribe", reply

    def read(self):
        line = self.f.readline()
        if not line:
            raise EOFError("redis closed")
        t, rest = line[:1], line[1:-2]
        if t == b"*":
            return [self.read() for _ in range(int(rest))]
        if t == b"$":
            n = int(rest)
            data = self.f.read(n + 2)[:-2]
            return data
        if t == b":":
            return int(rest)
        return rest

    def close(self):
        self.f.close()
        self.s.close()


def test_redis_notice():
    sub = RedisSub("stf:modes")
    try:
        sid = sql1("SELECT id FROM storages WHERE name = 't3'")
        expect(["mark-ro", "t3"], 0)
        msg = sub.read()
        check(msg == [b"message", b"stf:modes", f"storage {sid}".encode()],
              "mark-ro published 'storage <id>' on stf:modes", repr(msg))
        cid = sql1("SELECT id FROM clusters WHERE name = 'cell'")
        expect(["cluster", "mark-ro", "cell"], 0)
        msg = sub.read()
        check(msg == [b"message", b"stf:modes", f"cluster {cid}".encode()],
              "cluster mark-ro published 'cluster <id>'", repr(msg))
        expect(["cluster", "mark-rw", "cell"], 0)
        sub.read()
        expect(["mark-rw", "t3"], 0)
        sub.read()
    except (socket.timeout, EOFError) as e:
        check(False, "Redis notice received", repr(e))
    finally:
        sub.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_nothing_else_running():
    """No dispatcher, no repaird, and Redis unreachable: mark-down still works at once."""
    env = {"STF_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    t0 = time.monotonic()
    expect(["mark-down", "t4", "--reason", "disk replaced"], 0,
           "t4: rw -> down (cluster cell: rw -> ro)\n", "", env=env)
    check(time.monotonic() - t0 < 5, "mark-down without Redis returns quickly")
    check(mode_of("t4") == "down", "t4 is down")
    check(last_history("t4")[1:4] == ["rw", "down", "disk replaced"], "history row written")
    set_modes(t4="rw")


def wait_for(cond, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    check(False, f"timed out waiting for {what}")
    return False


def test_row_lock():
    """A change waits for the cluster row lock another transaction holds."""
    holder = subprocess.Popen([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waiter = None
    try:
        holder.stdin.write("BEGIN;\nSELECT id FROM clusters WHERE name = 'cell' FOR UPDATE;\n"
                           "SELECT 'locked-by-test';\n")
        holder.stdin.flush()
        wait_for(lambda: sql1("SELECT count(*) FROM pg_stat_activity WHERE state ="
                              " 'idle in transaction' AND query LIKE '%locked-by-test%'") == "1",
                 "the test's lock")
        waiter = subprocess.Popen([CTL, "mark-ro", "t2", "--reason", "lock test"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ok = wait_for(lambda: sql1("SELECT count(*) FROM pg_stat_activity WHERE"
                                   " wait_event_type = 'Lock' AND query LIKE"
                                   " 'SELECT id, name, forced_mode FROM clusters%'") == "1",
                      "clusterctl to wait for the row lock")
        check(ok and waiter.poll() is None, "mark-ro blocks while the cluster row is locked")
        check(mode_of("t2") == "rw", "nothing changed while blocked")
        holder.stdin.write("COMMIT;\n")
        holder.stdin.close()
        out, err = waiter.communicate(timeout=30)
        check(waiter.returncode == 0 and out == "t2: rw -> ro (cluster cell: rw -> ro)\n",
              "mark-ro proceeds after the lock is released", out + err)
        holder.wait(timeout=30)
    finally:
        for p in (waiter, holder):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    set_modes(t2="rw")


def test_concurrency():
    """Many clusterctl processes with conflicting changes at once: the result is a valid chain."""
    names = ["r1", "r2", "r3", "r4"]
    add_cluster("race", names, 44000)
    set_objects("race", True)
    start_id = int(sql1("SELECT coalesce(max(id), 0) FROM mode_history"))
    rnd = random.Random(4711)
    plan = []
    for i in range(60):
        if i % 10 == 9:
            plan.append((["cluster", rnd.choice(["mark-ro", "mark-rw", "mark-down"]), "race",
                          "--reason", f"p{i}"], False))
            continue
        force = rnd.random() < 0.5
        args = [rnd.choice(["mark-rw", "mark-ro", "mark-down", "mark-spare"]), rnd.choice(names),
                "--reason", f"p{i}"] + (["--force"] if force else [])
        plan.append((args, force))
    procs = [subprocess.Popen([CTL, *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for a, _ in plan]
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=120)
            results.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    changed = 0
    for (args, _), (code, out, err) in zip(plan, results):
        label = "concurrent " + " ".join(args)
        if code == 0:
            ok = re.fullmatch(r"(\S+: \w+ -> \w+ \(cluster race.*\)|\S+ is already \w+|"
                              r"cluster race: .*|cluster race is already .*)\n", out)
            check(ok is not None, f"{label}: success line", out + err)
            if not re.search(r"is already", out):
                changed += 1
        else:
            check(code == 1 and err.startswith("clusterctl: refused: ") and err.count("\n") == 1,
                  f"{label}: only refusals fail", f"rc={code} {err!r}")
    rows = sql("SELECT target_kind, target_name, from_mode, to_mode, reason FROM mode_history"
               f" WHERE id > {start_id} AND target_name IN ('race', 'r1', 'r2', 'r3', 'r4')"
               " ORDER BY id")
    check(len(rows) == changed, f"one history row per change ({changed})", f"{len(rows)} rows")
    force_of = {f"p{i}": force for i, (_, force) in enumerate(plan)}
    state = {n: "rw" for n in names}
    state["race"] = "rw"
    for kind, name, frm, to, reason in rows:
        check(frm == state[name], f"chain of {name}: {frm} follows {state[name]}")
        if kind == "storage":
            cell = TABLE[frm].get(to)
            check(cell == "yes" or (cell == "star" and force_of[reason]),
                  f"{name}: {frm} -> {to} allowed ({reason})")
        state[name] = to
    for n in names:
        check(mode_of(n) == state[n], f"{n}: final mode matches its last history row")
    forced = sql1("SELECT coalesce(forced_mode, 'rw') FROM clusters WHERE name = 'race'")
    check(forced == state["race"], "race: forced mode matches its last history row")


def main():
    if not os.access(CTL, os.X_OK):
        print(f"missing {CTL}")
        return 1
    code, out, err = ctl("migrate")
    if code != 0:
        print(f"migrate failed: {out}{err}")
        return 1
    tests = [test_every_cell, test_cluster_forced, test_effective_in_status, test_history,
             test_jobs, test_removals, test_usage_and_messages, test_redis_notice,
             test_nothing_else_running, test_row_lock, test_concurrency]
    for t in tests:
        before = len(failures)
        t0 = time.monotonic()
        try:
            t()
        except Exception as e:  # report and go on with the next test
            check(False, f"{t.__name__} raised {type(e).__name__}: {e}")
        status = "ok" if len(failures) == before else "FAILED"
        print(f"{t.__name__}: {status} ({time.monotonic() - t0:.2f}s)", flush=True)
    print(f"{checks} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
