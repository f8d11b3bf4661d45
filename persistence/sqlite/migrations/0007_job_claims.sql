-- 0007_job_claims: job rows are claimed before anyone acts on them, so that
-- one relay publishes a job and one delivery runs it at a time.
--
-- A relay claims the rows it is about to publish (relay_until in the future,
-- relay_token naming its claim) and marks them published under that claim; a
-- relay that dies lets its claim run out. A broker's consumer claims the row
-- of a delivered job (lease_until, lease_token) before the job runs and
-- records its outcome under that lease; a duplicate delivery finds the row
-- claimed and changes nothing. The embedded queue keeps identifying its
-- leases by attempts and lease_until, as before.
ALTER TABLE jobs ADD COLUMN lease_token INTEGER; -- the delivery holding the lease (broker consumers)
ALTER TABLE jobs ADD COLUMN relay_until INTEGER; -- NULL: no relay is publishing the row
ALTER TABLE jobs ADD COLUMN relay_token INTEGER; -- the relay's claim

-- Rows whose delivery's lease runs out (its consumer died) are published
-- again; the leased rows are the jobs running now, a few.
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE lease_until IS NOT NULL;

-- Named leases: the one process that runs a periodic task (the orphan
-- sweeper) holds its lease while it runs.
CREATE TABLE leases (
    name   TEXT    NOT NULL PRIMARY KEY,
    holder TEXT    NOT NULL,
    until  INTEGER NOT NULL -- unix microseconds UTC
) STRICT;
