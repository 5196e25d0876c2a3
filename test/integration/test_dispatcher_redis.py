"""test/integration/test_dispatcher_redis.py — Redis is a helper, not a dependency of
correctness: with Redis stopped PUT/GET/DELETE keep working, caches never serve a replaced or
deleted version, the deferred work (file deletions) is recorded in PostgreSQL and carried out
once Redis is back; with Redis up, a hot object's GET costs no PostgreSQL round trip and
writes through one dispatcher are seen at once by another. Real storaged, PostgreSQL, Redis,
repaird."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ["STF_SRC"], "test", "harness"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dispatcher_env as de  # noqa: E402
import procs  # noqa: E402
from test_dispatcher_cleanup import assert_exactly_live_files  # noqa: E402


def test_cache_hot_get_and_cross_dispatcher_invalidation():
    with procs.Procs() as p:
        s = de.System(p, clusters=2)
        d2 = s.start_dispatcher()
        s.req("PUT", "/b")
        assert s.put("/b/hot", b"v1")[0] == 201
        # a write leaves short tombstones in Redis (no refill from a read that raced with it)
        bid = s.sql_one("SELECT id FROM buckets WHERE name = 'b'")
        de.wait_until(lambda: s.redis("EXISTS", "stf:o:%s:hot" % bid, "stf:b:b") == "0",
                      what="the tombstones to expire", timeout=5)
        assert s.req("GET", "/b/hot")[2] == b"v1"
        assert s.redis("EXISTS", "stf:o:%s:hot" % bid) == "1", "the lookup did not fill Redis"
        m0 = s.metrics()
        for _ in range(200):
            assert s.req("GET", "/b/hot")[2] == b"v1"
        m1 = s.metrics()
        assert m1["stf_dispatcher_meta_cache_misses_total"] == \
            m0["stf_dispatcher_meta_cache_misses_total"], "a hot GET went to PostgreSQL"
        # the other dispatcher: its first lookup is served by Redis, not PostgreSQL
        assert s.req("GET", "/b/hot", port=d2.port)[2] == b"v1"
        m2 = s.req("GET", "/_metrics", port=d2.port)[2].decode()
        assert "stf_dispatcher_meta_cache_redis_hits_total 2" in m2, m2  # bucket + object
        # writes through one are seen at once through it, and through the other as soon as
        # the invalidation message arrives (milliseconds; 1 s at worst, the in-process TTL)
        for i in range(20):
            body = b"v%d" % (i + 2)
            assert s.put("/b/hot", body)[0] == 201
            assert s.req("GET", "/b/hot")[2] == body
            de.wait_until(lambda: s.req("GET", "/b/hot", port=d2.port)[2] == body,
                          what="the other dispatcher to see the write", timeout=1.0)
        assert s.req("DELETE", "/b/hot", port=d2.port)[0] == 204
        assert s.req("GET", "/b/hot", port=d2.port)[0] == 404
        de.wait_until(lambda: s.req("GET", "/b/hot")[0] == 404, timeout=1.0,
                      what="the delete to be seen by the other dispatcher")
        assert s.req("MOVE", "/b", headers={"X-STF-Move-Destination": "/c"},
                     port=d2.port)[0] == 201
        de.wait_until(lambda: s.req("PUT", "/b/x", body=b"1")[0] == 404, timeout=1.0,
                      what="the bucket rename to be seen by the other dispatcher")
        assert s.req("PUT", "/c/x", body=b"1")[0] == 201


def test_redis_down_everything_works_and_nothing_is_lost():
    with procs.Procs() as p:
        s = de.System(p, clusters=2)
        d2 = s.start_dispatcher()
        rep = s.start_repaird()
        s.req("PUT", "/b")
        for i in range(10):
            assert s.put("/b/o%d" % i, b"before %d" % i)[0] == 201
            assert s.req("GET", "/b/o%d" % i, port=d2.port)[0] == 200  # cached on d2 too
        de.wait_settled(s)
        last_job = int(s.sql_one("SELECT coalesce(max(id), 0) FROM jobs"))
        s.redis_stop()
        try:
            t0 = time.monotonic()
            for i in range(10):
                assert s.put("/b/o%d" % i, b"after %d" % i)[0] == 201  # overwrite
                st, _, body = s.req("GET", "/b/o%d" % i)
                assert (st, body) == (200, b"after %d" % i), (st, body)
            for i in range(5):
                assert s.req("DELETE", "/b/o%d" % i)[0] == 204
                assert s.req("GET", "/b/o%d" % i)[0] == 404
            for i in range(10, 20):
                assert s.put("/b/o%d" % i, b"new %d" % i)[0] == 201
                assert s.req("GET", "/b/o%d" % i)[2] == b"new %d" % i
            took = time.monotonic() - t0
            assert took < 10, "requests without Redis took %.1f s" % took
            # the other dispatcher drops its in-process copies within its short TTL
            for i in range(5, 10):
                de.wait_until(lambda: s.req("GET", "/b/o%d" % i, port=d2.port)[2] ==
                              b"after %d" % i, what="d2 to see the overwrite", timeout=3)
            assert s.req("GET", "/_health")[2].count(b"redis: unreachable") == 1
            # the deferred deletions are recorded in PostgreSQL (10 overwrites, 5 deletes)
            recorded = int(s.sql_one("SELECT count(*) FROM jobs WHERE kind = 'delete_files' "
                                     "AND id > %d" % last_job))
            assert recorded == 15, recorded
        finally:
            s.redis_start()
        # Redis is back (empty): the recorded work is done, nothing stale is served
        de.wait_settled(s, timeout=60)
        assert_exactly_live_files(s)
        for i in range(5, 10):
            assert s.req("GET", "/b/o%d" % i, port=d2.port)[2] == b"after %d" % i
        assert rep.alive()


if __name__ == "__main__":
    sys.exit(procs.run_tests(globals()))
