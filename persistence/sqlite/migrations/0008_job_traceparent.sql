-- 0008_job_traceparent: the W3C traceparent of the request that queued a job
-- ('' when tracing is off), so the worker that runs it continues its trace.
ALTER TABLE jobs ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
