-- 0005_job_claims: job rows are claimed before anyone acts on them, so that
-- one relay publishes a job and one delivery runs it at a time, whatever
-- the number of nodes.
--
-- A relay claims the rows it is about to publish with FOR UPDATE SKIP
-- LOCKED (relay_until in the future, relay_token naming its claim), so
-- relays of other nodes take other rows, and marks them published under
-- that claim; a relay that dies lets its claim run out. A broker's consumer
-- claims the row of a delivered job (lease_until, lease_token) before the
-- job runs and records its outcome under that lease; a duplicate delivery
-- finds the row claimed and changes nothing.
ALTER TABLE jobs
    ADD COLUMN relay_until timestamptz, -- NULL: no relay is publishing the row
    ADD COLUMN relay_token bigint;      -- the relay's claim

-- Rows whose delivery's lease runs out (its consumer died) are published
-- again; the leased rows are the jobs running now, a few.
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE lease_until IS NOT NULL;

-- Named leases: the one process that runs a periodic task (the orphan
-- sweeper) holds its lease while it runs.
CREATE TABLE leases (
    name   text        NOT NULL PRIMARY KEY,
    holder text        NOT NULL,
    until  timestamptz NOT NULL
);
