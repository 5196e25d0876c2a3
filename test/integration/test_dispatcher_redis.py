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
        # a write leaves a short tombstone in Redis (no refill from a read that raced with it)
        bid = s.sql_one("SELECT id FROM buckets WHERE name = 'b'")
        de.wait_until(lambda: s.redis("EXISTS", "stf:b:b") == "0",
                      what="the bucket's tombstone to expire", timeout=5)
        assert s.req("GET", "/b/none")[0] == 404  # the bucket's row is cached from now on
        misses = "stf_dispatcher_meta_cache_misses_total"
        m0, n0 = s.metrics(), s.metrics(port=d2.port)
        # an upload stores its committed row in Redis (write-through): the first reads after
        # it need no PostgreSQL, through either dispatcher
        assert s.put("/b/hot", b"v1")[0] == 201
        row = s.redis("GET", "stf:o:%s:hot" % bid)
        assert row.startswith("1 "), "the upload did not store its row in Redis: %r" % row
        for _ in range(200):
            assert s.req("GET", "/b/hot")[2] == b"v1"
        m1 = s.metrics()
        assert m1[misses] == m0[misses], "a GET after the upload went to PostgreSQL"
        # (Redis first, then the in-process cache; again from Redis each time its 1 s expires)
        assert m1["stf_dispatcher_meta_cache_redis_hits_total"] > \
            m0["stf_dispatcher_meta_cache_redis_hits_total"], "the row was not read from Redis"
        assert s.req("GET", "/b/hot", port=d2.port)[2] == b"v1"
        n1 = s.metrics(port=d2.port)
        assert n1[misses] == n0[misses], "the other dispatcher's first read went to PostgreSQL"
        assert n1["stf_dispatcher_meta_cache_redis_hits_total"] > \
            n0["stf_dispatcher_meta_cache_redis_hits_total"], "the other one read Redis"
        # an overwrite replaces the stored row
        assert s.put("/b/hot", b"v1b")[0] == 201
        assert s.redis("GET", "stf:o:%s:hot" % bid) not in (row, ""), "the old row stayed"
        assert s.req("GET", "/b/hot", port=d2.port)[2] == b"v1b"
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
