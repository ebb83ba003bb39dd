-- Schema version 1: one row per job, with its payload, state and output.
-- Ids are UUIDv7: their byte order, which Postgres sorts uuid by, is creation order.
CREATE TABLE jobs (
    id uuid PRIMARY KEY,
    pool text NOT NULL,
    handler text NOT NULL,
    payload bytea NOT NULL,
    project_id text NOT NULL,
    ref_type text NOT NULL,
    ref_id text NOT NULL,
    priority integer NOT NULL,
    max_attempts bigint NOT NULL CHECK (max_attempts >= 0),
    timeout_ms bigint NOT NULL CHECK (timeout_ms >= 0),
    expire_after_ms bigint CHECK (expire_after_ms >= 0),
    dedup text NOT NULL CHECK (dedup IN ('off', 'return_existing', 'reject')),
    trace jsonb NOT NULL,
    state text NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired')),
    attempt bigint NOT NULL CHECK (attempt >= 0),
    last_error text,
    executor text,
    output bytea,
    created_at_ms bigint NOT NULL,
    updated_at_ms bigint NOT NULL
);
-- Deduplication: the newest job of a (ref_type, ref_id).
CREATE INDEX jobs_by_ref ON jobs (ref_type, ref_id, id DESC);
-- Recovery and listing by state, newest first.
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_pool_state ON jobs (pool, state, id);
