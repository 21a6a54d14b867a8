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


-- Room in every page for the next versions of its rows: each job is rewritten by
-- its claim and its completion, and with full pages every new version went to the
-- end of the table, where the claiming and the completing connections queued on
-- the same last page and on extending the table. With half of each page free a
-- new version lands beside the old one.
ALTER TABLE jobs SET (fillfactor = 50);
