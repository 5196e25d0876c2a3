#!/usr/bin/env python3
# bench/recovery_data.py — the data of the recovery benchmark (bench/recovery_bench.sh): fills a
# storaged over HTTP, registers the objects in PostgreSQL, changes 1 % of a disk, and sums up
# the recovery job's payload.
"""Usage:
  recovery_data.py fill URI COUNT TOTAL_BYTES SEED     PUT COUNT random objects (sizes spread
        evenly from 0.2x to 1.8x TOTAL_BYTES/COUNT) into a storaged
  recovery_data.py rows ROOT CLUSTER_ID                prints COPY data (tab-separated) of one
        objects row per blob under a storage root: bucket_id 1, name = internal_name
  recovery_data.py change URI ROOT PERCENT SEED        changes PERCENT % of the files of a disk
        through its storaged: a third new, a third deleted, a third rewritten in place with a
        few bytes different (mtime moved an hour on); prints what it did
  recovery_data.py compare ROOT_A ROOT_B               exit 0 when both roots hold the same
        blob files with the same bytes (says what differs otherwise)"""
import hashlib
import http.client
import os
import random
import sys
import urllib.parse


def conn_for(uri):
    u = urllib.parse.urlsplit(uri)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=120)


def put(conn, name, data):
    conn.request("PUT", "/" + name, body=data, headers={"Content-Length": str(len(data))})
    r = conn.getresponse()
    r.read()
    if r.status != 201:
        sys.exit("PUT %s answered %d" % (name, r.status))


def fill(uri, count, total, seed):
    rnd = random.Random(seed)
    mean = total // count
    conn = conn_for(uri)
    pool = os.urandom(4 << 20)
    for _ in range(count):
        size = rnd.randint(mean // 5, mean * 9 // 5)
        off = rnd.randrange(len(pool))
        data = (pool[off:] + pool)[:size] if size <= len(pool) else os.urandom(size)
        data = rnd.randbytes(min(16, size)) + data[16:]  # every object differs
        put(conn, "%032x" % rnd.getrandbits(128), data)
    conn.close()


def rows(root, cluster_id):
    for rel, path in sorted(tree(root).items()):
        with open(path, "rb") as f:
            data = f.read()
        name = os.path.basename(rel)
        print("1\t%s\t%s\t%s\t%d\t%s" % (name, name, cluster_id, len(data),
                                           hashlib.md5(data).hexdigest()))


def change(uri, root, percent, seed):
    rnd = random.Random(seed)
    files = tree(root)
    objs = sorted((os.path.basename(rel), os.path.getsize(p)) for rel, p in files.items())
    n = max(3, len(objs) * percent // 100)
    picked = rnd.sample(objs, n)
    conn = conn_for(uri)
    new = deleted = rewritten = 0
    paths = {os.path.basename(rel): p for rel, p in files.items()}
    for i, (name, size) in enumerate(picked):
        if i % 3 == 0:  # a new object
            data = os.urandom(int(size))
            put(conn, "%032x" % rnd.getrandbits(128), data)
            new += 1
        elif i % 3 == 1:  # deleted
            conn.request("DELETE", "/" + name)
            r = conn.getresponse()
            r.read()
            deleted += 1
        else:  # the same name, a few bytes different (bit rot repaired, a torn write...)
            path = paths[name]
            with open(path, "r+b") as fh:
                for k in range(4):
                    fh.seek(rnd.randrange(max(1, int(size))))
                    fh.write(os.urandom(1))
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 3600 * 10**9))
            rewritten += 1
    conn.close()
    print("changed %d of %d files: %d new, %d deleted, %d rewritten"
          % (n, len(objs), new, deleted, rewritten))


def tree(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel.startswith("."):
            continue
        for fn in files:
            if not fn.startswith("."):
                out[os.path.join(rel, fn)] = os.path.join(dirpath, fn)
    return out


def compare(a, b):
    ta, tb = tree(a), tree(b)
    if set(ta) != set(tb):
        diff = sorted(set(ta) ^ set(tb))
        sys.exit("different file sets: %d differ, e.g. %s" % (len(diff), diff[:3]))
    for rel in ta:
        with open(ta[rel], "rb") as fa, open(tb[rel], "rb") as fb:
            if fa.read() != fb.read():
                sys.exit("%s differs" % rel)
    print("identical: %d files" % len(ta))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "fill" and len(args) == 4:
        fill(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "rows" and len(args) == 2:
        rows(args[0], args[1])
    elif cmd == "change" and len(args) == 4:
        change(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "compare" and len(args) == 2:
        compare(args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
