-- The attempt that completes a job is told by the job's record itself: who ran it
-- (worker_id), when it started and finished (started_at, completed_at), which run
-- and attempt it was (runs, attempts). Logging it again as an attempt row cost every
-- job a second row and a second index entry for nothing the record did not hold, so
-- the completion no longer writes it; `job_executions` keeps the attempts that did
-- not complete (FAILED, LOST, CANCELLED) and a batch parent's attempt (whose record
-- goes on to wait for its children). Records completed before this migration keep
-- their logged row.
--
-- `job_attempts` is the whole log: the logged rows and, for each COMPLETED record
-- without a logged row for its last attempt, that attempt read from the record.
-- A filter on job_id reaches both halves' indexes.
CREATE VIEW job_attempts AS
SELECT job_id, run, attempt, worker_id, status, started_at, finished_at, duration_ms, error
FROM job_executions
UNION ALL
SELECT j.id, j.runs, j.attempts, j.worker_id, 'COMPLETED', j.started_at, j.completed_at,
       GREATEST(0, (extract(epoch FROM j.completed_at - j.started_at) * 1000)::bigint), NULL
FROM jobs j
WHERE j.status = 'COMPLETED' AND j.worker_id IS NOT NULL AND j.attempts > 0
  AND NOT EXISTS (SELECT 1 FROM job_executions e
                  WHERE e.job_id = j.id AND e.run = j.runs AND e.attempt = j.attempts);

-- Completed attempts were counted when their row was logged; now also when a
-- claimed attempt (RUNNING with a lease: a batch parent waiting for its children
-- has none, and its own attempt is still logged) becomes COMPLETED.
CREATE OR REPLACE FUNCTION conveyor_jobs_counted_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue_name, job_type, status, n)
    SELECT queue_name, job_type, status, sum(n) FROM (
        SELECT queue_name, job_type, status, -1 AS n FROM old_jobs
        UNION ALL
        SELECT queue_name, job_type, status, 1 FROM new_jobs
    ) c
    GROUP BY 1, 2, 3 HAVING sum(n) <> 0;
    INSERT INTO job_activity_deltas (kind, bucket, n, total_ms)
    SELECT 'failed', bucket, sum(n), 0 FROM (
        SELECT date_trunc('second', completed_at) AS bucket, -1 AS n FROM old_jobs
        WHERE status = 'FAILED' AND completed_at > now() - interval '25 hours'
        UNION ALL
        SELECT date_trunc('second', completed_at), 1 FROM new_jobs
        WHERE status = 'FAILED' AND completed_at > now() - interval '25 hours'
    ) c
    GROUP BY bucket HAVING sum(n) <> 0;
    INSERT INTO job_activity_deltas (kind, bucket, n, total_ms)
    SELECT 'completed', date_trunc('second', n.completed_at), count(*),
           sum(GREATEST(0, (extract(epoch FROM n.completed_at - n.started_at) * 1000)::bigint))
    FROM new_jobs n
    WHERE n.status = 'COMPLETED' AND n.worker_id IS NOT NULL
      AND n.completed_at > now() - interval '25 hours'
      AND EXISTS (SELECT 1 FROM old_jobs o
                  WHERE o.id = n.id AND o.status = 'RUNNING' AND o.lease_expires_at IS NOT NULL)
    GROUP BY 2;
    RETURN NULL;
END $$;
