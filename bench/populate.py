#!/usr/bin/env python3
# bench/populate.py — stores the objects a GET benchmark reads (NAME-0000 .. NAME-<COUNT-1>,
# SIZE bytes each) over keep-alive HTTP connections, and checks that they read back intact.
"""Usage: populate.py URL_PREFIX NAME COUNT SIZE [CLIENTS]

URL_PREFIX is e.g. http://127.0.0.1:9001/ (storaged, nginx WebDAV) or
http://127.0.0.1:8080/bucket/ (dispatcher). CLIENTS connections (default 1) share the work.
Every PUT must answer 2xx; the first and last objects are read back and compared byte for
byte. Exit 0 on success, 1 with a reason otherwise."""
import http.client
import sys
import threading
import urllib.parse


def body_for(size):
    """The same bytes wrk_objects.lua would send: a 256-byte pattern that does not compress."""
    block = bytes((i * 167 + 13) % 256 for i in range(256))
    return (block * (size // 256 + 1))[:size]


def put_range(url, name, indexes, body, failures):
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
    try:
        for i in indexes:
            path = "%s%s-%04d" % (url.path, name, i)
            conn.request("PUT", path, body=body, headers={"Content-Length": str(len(body))})
            resp = conn.getresponse()
            resp.read()
            if not 200 <= resp.status < 300:
                failures.append("PUT %s answered %d" % (path, resp.status))
                return
    except OSError as e:
        failures.append("PUT under %s failed: %s" % (url.path, e))
    finally:
        conn.close()


def main(argv):
    if len(argv) not in (5, 6):
        print(__doc__, file=sys.stderr)
        return 2
    url = urllib.parse.urlsplit(argv[1])
    name, count, size = argv[2], int(argv[3]), int(argv[4])
    clients = int(argv[5]) if len(argv) == 6 else 1
    if url.scheme != "http" or not url.path.endswith("/") or not 0 < count <= 1000000 \
            or not 0 < clients <= 256:
        print("populate: need an http:// prefix ending in /, 1..1000000 objects, 1..256 clients",
              file=sys.stderr)
        return 2
    body = body_for(size)
    failures = []
    threads = [threading.Thread(target=put_range,
                                args=(url, name, range(c, count, clients), body, failures))
               for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        print("populate: %s" % failures[0], file=sys.stderr)
        return 1
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
    for i in sorted({0, count - 1}):
        path = "%s%s-%04d" % (url.path, name, i)
        conn.request("GET", path)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200 or data != body:
            print("populate: GET %s answered %d with %d bytes, expected 200 with %d"
                  % (path, resp.status, len(data), size), file=sys.stderr)
            return 1
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
