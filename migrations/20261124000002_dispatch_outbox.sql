-- Which recorded jobs may be missing from Redis, kept as an outbox of write batches
-- instead of a per-job `dispatched_at` mark. The mark cost one more row version of
-- every job (and its entries in every jobs index) just to say "pushed"; an outbox row
-- is written in the same statement as the jobs it names and deleted once they are
-- pushed: one small row per batch.

CREATE TABLE dispatch_outbox (
    id            uuid        PRIMARY KEY,
    job_ids       uuid[]      NOT NULL,
    -- true: the writer pushes these jobs itself right after its commit and deletes
    -- the row, so the reconciler only takes the row once it is older than a grace
    -- period (the writer died, or Redis was down). false: nobody else will push
    -- them (transactional enqueue, lease recovery, Redis lost its data), so the
    -- reconciler takes the row at once.
    writer_pushes boolean     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dispatch_outbox_created_idx ON dispatch_outbox (created_at);

-- Carry over what the old marks said was not pushed yet.
INSERT INTO dispatch_outbox (id, job_ids, writer_pushes)
SELECT gen_random_uuid(), array_agg(id), false
FROM (SELECT id, (row_number() OVER ()) / 1000 AS chunk FROM jobs
      WHERE dispatched_at IS NULL AND status IN ('PENDING', 'DELAYED', 'RETRYING')) AS waiting
GROUP BY chunk;

DROP INDEX jobs_undispatched_idx;
ALTER TABLE jobs DROP COLUMN dispatched_at;

-- The attempt log's foreign key checked every execution row against jobs (one
-- look-up per row in the completer's hot statement), though execution rows are only
-- ever written joined to the job row they belong to. A statement-level trigger keeps
-- what the key's ON DELETE CASCADE did: deleting jobs deletes their attempts.
ALTER TABLE job_executions DROP CONSTRAINT job_executions_job_id_fkey;

CREATE FUNCTION conveyor_delete_executions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_executions e USING deleted_jobs d WHERE e.job_id = d.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_delete_executions AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS deleted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_delete_executions();

-- (DELETE, not TRUNCATE: `TRUNCATE jobs, job_executions` would refuse a nested one.)
CREATE FUNCTION conveyor_truncate_executions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_executions;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_truncate_executions AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_truncate_executions();

-- Running jobs without their lease deadline in the key: a heartbeat that extends
-- leases then changes no indexed column and can be a HOT update (no new index
-- entries). Lease recovery reads the running jobs (at most the workers' total
-- concurrency) and filters by deadline.
CREATE INDEX jobs_running_idx ON jobs (worker_id) WHERE status = 'RUNNING';
DROP INDEX jobs_running_lease_idx;
