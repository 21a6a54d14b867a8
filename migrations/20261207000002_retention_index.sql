-- Finished jobs of one (queue, status) in finish order, for retention (and clean).
--
-- Retention keeps the newest N finished records of a queue and status and deletes
-- those past the maximum age. Through the list index (ordered by created_at within
-- each job type) every batch read and sorted all finished rows of the queue and
-- status to find the newest N again; this index finds the Nth newest once and hands
-- the older rows over in order, a batch at a time, and "finished before the cutoff"
-- is a range of the same key.
--
-- Partial: only finished rows are in it. A status change is never a HOT update, so
-- every index on jobs costs each enqueue, claim and completion an index write; this
-- one costs the completion (or cancel) only. No existing index can go in exchange:
-- the list index's created_at order within each job type is what the job list reads.
CREATE INDEX jobs_finished_idx ON jobs (queue_name, status, completed_at DESC, id DESC)
    WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED');
