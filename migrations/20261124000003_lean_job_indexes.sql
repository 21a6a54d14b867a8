-- Fewer indexes on jobs. A claim or a completion changes a job's status, which is
-- never a HOT update, so every index on jobs gets a new entry each time: with four
-- list indexes that was most of the claim's and the completion's cost.
--
-- One list index instead of four: the job list merges, per (queue, status, type)
-- group that holds jobs (known from the counters), the newest rows of this index;
-- the unfiltered, status-only and type-only lists are such merges too. Retention and
-- clean read it by (queue, status).
CREATE INDEX jobs_list_idx ON jobs (queue_name, status, job_type, created_at DESC, id DESC);
DROP INDEX jobs_created_idx;
DROP INDEX jobs_queue_status_idx;
DROP INDEX jobs_status_idx;
DROP INDEX jobs_type_idx;

