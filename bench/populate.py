#!/usr/bin/env python3
# bench/populate.py — stores the objects a GET benchmark reads (NAME-0000 .. NAME-<COUNT-1>,
# SIZE bytes each) over one keep-alive HTTP connection, and checks that they read back intact.
"""Usage: populate.py URL_PREFIX NAME COUNT SIZE

URL_PREFIX is e.g. http://127.0.0.1:9001/ (storaged, nginx WebDAV) or
http://127.0.0.1:8080/bucket/ (dispatcher). Every PUT must answer 2xx; the first and last
objects are read back and compared byte for byte. Exit 0 on success, 1 with a reason otherwise."""
import http.client
import sys
import urllib.parse


def body_for(size):
    """The same bytes wrk_objects.lua would send: a 256-byte pattern that does not compress."""
    block = bytes((i * 167 + 13) % 256 for i in range(256))
    return (block * (size // 256 + 1))[:size]


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    url = urllib.parse.urlsplit(argv[1])
    name, count, size = argv[2], int(argv[3]), int(argv[4])
    if url.scheme != "http" or not url.path.endswith("/") or not 0 < count <= 100000:
        print("populate: need an http:// prefix ending in / and 1..100000 objects", file=sys.stderr)
        return 2
    body = body_for(size)
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
    for i in range(count):
        path = "%s%s-%04d" % (url.path, name, i)
        conn.request("PUT", path, body=body, headers={"Content-Length": str(size)})
        resp = conn.getresponse()
        resp.read()
        if not 200 <= resp.status < 300:
            print("populate: PUT %s answered %d" % (path, resp.status), file=sys.stderr)
            return 1
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
