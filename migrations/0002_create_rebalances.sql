-- 0002_create_rebalances.sql — rebalance runs (`clusterctl rebalance`) and their planned moves,
-- with the progress repaird's rebalance job records after every object it moves.

CREATE TABLE rebalances (
    id                bigserial PRIMARY KEY,
    state             text NOT NULL DEFAULT 'running'
                      CHECK (state IN ('running', 'paused', 'done', 'cancelled')),
    -- when moves may happen, "HH:MM-HH:MM" in repaird's local time
    move_window       text NOT NULL,
    -- this run's own throttle (bytes read plus written per second); 0 = only repaird's
    max_bytes_per_sec bigint NOT NULL DEFAULT 0 CHECK (max_bytes_per_sec >= 0),
    -- how long the old copies of a moved object stay readable (stale caches, reads in flight)
    delete_delay_ms   bigint NOT NULL DEFAULT 30000 CHECK (delete_delay_ms >= 0),
    tolerance_pct     numeric NOT NULL CHECK (tolerance_pct >= 0 AND tolerance_pct <= 100),
    job_id            bigint,                       -- the rebalance job executing it now
    note              text NOT NULL DEFAULT '',     -- what the job last said (window, waits)
    created_by        text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
-- at most one run is active at a time
CREATE UNIQUE INDEX rebalances_active_idx ON rebalances ((true))
    WHERE state IN ('running', 'paused');

-- Cluster ids are not foreign keys: a finished run must not keep a cluster from being removed.
CREATE TABLE rebalance_moves (
    id               bigserial PRIMARY KEY,
    rebalance_id     bigint NOT NULL REFERENCES rebalances (id) ON DELETE CASCADE,
    src_cluster_id   bigint NOT NULL,
    dst_cluster_id   bigint NOT NULL,
    planned_bytes    bigint NOT NULL CHECK (planned_bytes >= 0),
    planned_objects  bigint NOT NULL CHECK (planned_objects >= 0),
    moved_bytes      bigint NOT NULL DEFAULT 0,
    moved_objects    bigint NOT NULL DEFAULT 0,
    -- overwritten, deleted or moved by someone else meanwhile: left alone
    skipped_objects  bigint NOT NULL DEFAULT 0,
    -- no good copy could be read, or the destination refused it: left where it was
    failed_objects   bigint NOT NULL DEFAULT 0,
    -- the cursor over the source's objects in (updated_at, id) order
    after_updated_at timestamptz NOT NULL DEFAULT '-infinity',
    after_id         bigint NOT NULL DEFAULT 0,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    note             text NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rebalance_moves_run_idx ON rebalance_moves (rebalance_id, id);
