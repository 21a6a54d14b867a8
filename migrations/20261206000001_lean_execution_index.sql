-- The attempt log's outcome index only for attempts that did not complete. The
-- error report reads FAILED, LOST and CANCELLED attempts newest first; completed
-- attempts (nearly every row) are counted by the activity buckets and never read
-- through this index, so indexing them cost one index insertion per job for nothing.
DROP INDEX job_executions_status_finished_idx;
CREATE INDEX job_executions_not_completed_idx ON job_executions (status, finished_at DESC)
    WHERE status IN ('FAILED', 'LOST', 'CANCELLED');
