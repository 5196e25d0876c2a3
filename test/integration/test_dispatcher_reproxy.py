"""test/integration/test_dispatcher_reproxy.py — reproxy = x-accel-redirect with a real nginx
running the shipped docs/nginx-reproxy.conf (only its dispatcher and listen lines replaced):
nginx sends the bytes from the storage, the metadata headers are the object's, ranges and
conditionals behave as without a proxy, and a dead first copy falls back to the dispatcher's
own streaming with a repair queued."""
import json
import os
import re
import shutil
import socket
import sys

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402


def start_nginx(p, dispatcher_port):
    conf = open(procs.src_path("docs", "nginx-reproxy.conf")).read()
    port = procs.free_port()
    conf, n1 = re.subn(r"server 127\.0\.0\.1:8080;", "server 127.0.0.1:%d;" % dispatcher_port,
                       conf)
    conf, n2 = re.subn(r"listen 127\.0\.0\.1:8088;", "listen 127.0.0.1:%d;" % port, conf)
    assert n1 == 1 and n2 == 1, "the shipped config no longer has the marked lines"
    d = p.path("nginx")
    os.makedirs(d)
    os.chmod(p.dir, 0o755)
    os.chmod(d, 0o777)
    with open(os.path.join(d, "stf.conf"), "w") as f:
        f.write(conf)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write("worker_processes 1;\ndaemon off;\npid %(d)s/nginx.pid;\n"
                "error_log %(d)s/error.log info;\nevents { worker_connections 1024; }\n"
                "http {\n  access_log %(d)s/access.log;\n"
                "  client_body_temp_path %(d)s/body;\n  proxy_temp_path %(d)s/proxy;\n"
                "  fastcgi_temp_path %(d)s/fcgi;\n  uwsgi_temp_path %(d)s/uwsgi;\n"
                "  scgi_temp_path %(d)s/scgi;\n  include %(d)s/stf.conf;\n}\n" % {"d": d})
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    r = procs.subprocess.run([nginx, "-t", "-p", d, "-c", os.path.join(d, "nginx.conf")],
                             capture_output=True, text=True)
    assert r.returncode == 0, "nginx -t: %s" % r.stderr
    n = p.spawn("nginx", [nginx, "-p", d, "-c", os.path.join(d, "nginx.conf")])

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            assert n.alive(), "nginx exited:\n" + open(os.path.join(d, "error.log")).read()
            return False
    procs.poll(up, what="nginx to listen")
    return port


def test_reproxy_through_nginx():
    with procs.Procs() as p:
        s = de.System(p, clusters=2, conf={"reproxy": "x-accel-redirect"})
        ng = start_nginx(p, s.port)

        def via(method, path, **kw):
            return s.req(method, path, port=ng, **kw)

        assert via("PUT", "/b")[0] == 201
        data = os.urandom(5 * 1024 * 1024 + 3)
        st, h, _ = via("PUT", "/b/big.bin", body=data,
                       headers={"Content-Type": "video/mp4", "Content-Length": str(len(data))})
        assert st == 201, st
        small = b"hello through nginx"
        assert via("PUT", "/b/s.txt", body=small, headers={"Content-Type": "text/plain"})[0] == 201

        # the dispatcher itself answers with a redirect and no bytes
        st, h, body = s.req("GET", "/b/s.txt")
        assert st == 200 and body == b"", (st, body)
        internal, cluster, _, _ = s.object_row("b", "s.txt")
        first = de.read_order(s, internal, cluster)[0]
        first_uri = [x for x in s.storages if x.name == first][0].uri
        assert h["x-reproxy-url"] == "%s/%s" % (first_uri, internal), h
        assert h["x-accel-redirect"] == "/reproxy"

        out_before = s.metrics()["stf_dispatcher_bytes_out_total"]
        _, meta, _ = s.req("HEAD", "/b/big.bin")
        st, h, body = via("GET", "/b/big.bin")
        assert st == 200 and body == data, (st, len(body))
        assert h["content-type"] == "video/mp4", h
        assert h["etag"] == meta["etag"] and h["last-modified"] == meta["last-modified"], (h, meta)
        assert h["x-content-type-options"] == "nosniff"
        assert "x-reproxy-url" not in h and "x-accel-redirect" not in h
        st, h, body = via("GET", "/b/s.txt")
        assert (st, body, h["content-type"]) == (200, small, "text/plain"), (st, body, h)
        # the bytes came from the storage, not from the dispatcher
        assert s.metrics()["stf_dispatcher_bytes_out_total"] == out_before

        # ranges, If-Range, 416, conditionals
        st, h, body = via("GET", "/b/big.bin", headers={"Range": "bytes=1000-1999"})
        assert st == 206 and body == data[1000:2000], (st, len(body))
        assert h["content-range"] == "bytes 1000-1999/%d" % len(data), h
        st, h, body = via("GET", "/b/big.bin", headers={"Range": "bytes=-10"})
        assert st == 206 and body == data[-10:]
        st, _, body = via("GET", "/b/big.bin", headers={"Range": "bytes=0-9",
                                                        "If-Range": '"not-it"'})
        assert st == 200 and body == data, st
        st, _, body = via("GET", "/b/big.bin", headers={"Range": "bytes=0-9",
                                                        "If-Range": meta["etag"]})
        assert st == 206 and body == data[:10], st
        assert via("GET", "/b/big.bin", headers={"Range": "bytes=%d-" % len(data)})[0] == 416
        assert via("GET", "/b/big.bin", headers={"If-None-Match": meta["etag"]})[0] == 304
        assert via("GET", "/b/big.bin",
                   headers={"If-Modified-Since": meta["last-modified"]})[0] == 304
        assert via("GET", "/b/big.bin", headers={"If-None-Match": '"x"'})[0] == 200
        st, h, body = via("HEAD", "/b/big.bin")
        assert st == 200 and h["content-length"] == str(len(data)) and body == b""
        assert via("GET", "/b/missing")[0] == 404
        # a client cannot claim a failover to bypass the proxy
        st, h, body = via("GET", "/b/s.txt", headers={"X-STF-Reproxy-Failed": "1"})
        assert (st, body) == (200, small)
        # megabytes went to the client, none of them through the dispatcher (only the one-line
        # texts of the 404 and 416 answers)
        assert s.metrics()["stf_dispatcher_bytes_out_total"] - out_before < 200
        out_before = s.metrics()["stf_dispatcher_bytes_out_total"]

        # the first copy dies: nginx falls back to the dispatcher, which streams the bytes
        # from another copy and queues a repair
        victim = [x for x in s.storages if x.name == first][0]
        victim.kill()
        st, h, body = via("GET", "/b/s.txt")
        assert (st, body) == (200, small), (st, body)
        assert h["etag"] == '"%s"' % de.md5hex(small)
        st, _, body = via("GET", "/b/s.txt", headers={"Range": "bytes=6-12"})
        assert (st, body) == (206, small[6:13]), (st, body)
        oid = int(s.sql_one("SELECT id FROM objects WHERE internal_name = '%s'" % internal))
        de.wait_until(lambda: any(json.loads(j[3]) == {"object_id": oid}
                                  for j in s.jobs("repair_object")),
                      what="a repair job after the proxy's failover")
        assert s.metrics()["stf_dispatcher_bytes_out_total"] > out_before
        # a dispatcher streams itself when asked directly with the failover header
        st, _, body = s.req("GET", "/b/s.txt", headers={"X-STF-Reproxy-Failed": "1"})
        assert (st, body) == (200, small)


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
