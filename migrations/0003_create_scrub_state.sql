-- 0003_create_scrub_state.sql — where repaird's background scrub is in its pass over every
-- object, and which repaird holds the scrub (one at a time, with a lease like jobs).

CREATE TABLE scrub_state (
    id                    integer PRIMARY KEY CHECK (id = 1),
    after_object_id       bigint NOT NULL DEFAULT 0,      -- the cursor over objects by id
    pass                  bigint NOT NULL DEFAULT 0,      -- passes finished
    pass_started_at       timestamptz,                    -- of the current pass
    last_pass_started_at  timestamptz,
    last_pass_finished_at timestamptz,
    -- counts of the current pass
    objects_checked       bigint NOT NULL DEFAULT 0,
    copies_checked        bigint NOT NULL DEFAULT 0,
    bytes_checked         bigint NOT NULL DEFAULT 0,
    bad_copies            bigint NOT NULL DEFAULT 0,
    locked_by             text,
    locked_until          timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
INSERT INTO scrub_state (id) VALUES (1);
