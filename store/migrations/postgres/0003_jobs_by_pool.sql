-- Schema version 3: a pool's jobs, newest first, without a sort (the console's and
-- `marie jobs --pool`'s listing by pool alone).
CREATE INDEX jobs_by_pool ON jobs (pool, id);
