-- The attempt that completes a job is told by the job's record itself: who ran it
-- (worker_id), when it started and finished (started_at, completed_at), which run
-- and attempt it was (runs, attempts). Logging it again as an attempt row cost every
-- job a second row and a second index entry for nothing the record did not hold, so
-- the completion no longer writes it; `job_executions` keeps the attempts that did
-- not complete (FAILED, LOST, CANCELLED) and a batch parent's attempt (whose record
-- goes on to wait for its children). Records completed before this migration keep
-- their logged row. The activity counters count a completed attempt in the
-- completion's statement (`Store::finish`), the one writer of such attempts.
--
-- An attempt's duration in milliseconds, never negative (the start and the finish
-- may come from different clocks). Simple enough for PostgreSQL to inline.
CREATE FUNCTION conveyor_duration_ms(started timestamptz, finished timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT GREATEST(0, (extract(epoch FROM finished - started) * 1000)::bigint) $$;

-- `job_attempts` is the whole log: the logged rows and, for each COMPLETED record
-- without a logged row for its last attempt, that attempt read from the record.
-- A filter on job_id reaches both halves' indexes.
CREATE VIEW job_attempts AS
SELECT job_id, run, attempt, worker_id, status, started_at, finished_at, duration_ms, error
FROM job_executions
UNION ALL
SELECT j.id, j.runs, j.attempts, j.worker_id, 'COMPLETED', j.started_at, j.completed_at,
       conveyor_duration_ms(j.started_at, j.completed_at), NULL
FROM jobs j
WHERE j.status = 'COMPLETED' AND j.worker_id IS NOT NULL AND j.attempts > 0
  AND NOT EXISTS (SELECT 1 FROM job_executions e
                  WHERE e.job_id = j.id AND e.run = j.runs AND e.attempt = j.attempts);
