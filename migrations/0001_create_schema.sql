-- 0001_create_schema.sql — the data model: clusters, storages, buckets, objects, mode history,
-- and the durable record of background work. Applied by `clusterctl migrate` in one transaction.

CREATE TABLE clusters (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    -- the mode the operator forced it down to; NULL = not forced (effective mode is derived)
    forced_mode text CHECK (forced_mode IN ('ro', 'down')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE storages (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    cluster_id  bigint NOT NULL REFERENCES clusters (id),
    uri         text NOT NULL UNIQUE,
    mode        text NOT NULL DEFAULT 'rw' CHECK (mode IN ('rw', 'ro', 'down', 'spare', 'repair')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX storages_cluster_idx ON storages (cluster_id);

CREATE TABLE buckets (
    id          bigserial PRIMARY KEY,
    name        text COLLATE "C" NOT NULL CHECK (name ~ '^[a-z0-9._-]{1,63}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- set by DELETE /b; a delete_bucket job then purges its objects in batches
    deleted_at  timestamptz
);
CREATE UNIQUE INDEX buckets_live_name_idx ON buckets (name) WHERE deleted_at IS NULL;

CREATE TABLE objects (
    id            bigserial PRIMARY KEY,
    bucket_id     bigint NOT NULL REFERENCES buckets (id),
    name          text COLLATE "C" NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 1024),
    -- file name on every storage of the cluster: ROOT/aa/bb/<internal_name>; never reused
    internal_name text NOT NULL UNIQUE,
    cluster_id    bigint NOT NULL REFERENCES clusters (id),
    size          bigint NOT NULL CHECK (size >= 0),
    etag          text NOT NULL,                  -- MD5, 32 lower-case hex digits
    content_type  text NOT NULL DEFAULT 'application/octet-stream',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket_id, name)
);
CREATE INDEX objects_cluster_idx ON objects (cluster_id, updated_at);

-- Every mode change of a storage or cluster: who, when, from, to, why.
CREATE TABLE mode_history (
    id          bigserial PRIMARY KEY,
    target_kind text NOT NULL CHECK (target_kind IN ('storage', 'cluster')),
    target_id   bigint NOT NULL,
    target_name text NOT NULL,
    from_mode   text,
    to_mode     text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    actor       text NOT NULL,                    -- OS user
    program     text NOT NULL,                    -- clusterctl, repaird, ...
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mode_history_target_idx ON mode_history (target_kind, target_id, created_at);

-- Durable record of background work that must not be lost (Redis only carries job ids).
-- kind: delete_files, repair_object, delete_bucket, recover_storage, rebalance, verify, scrub.
CREATE TABLE jobs (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}',
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    run_after    timestamptz NOT NULL DEFAULT now(),
    locked_by    text,
    locked_until timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_open_idx ON jobs (state, run_after) WHERE state IN ('pending', 'running');
