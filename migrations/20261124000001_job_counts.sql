-- Exact job counts and recent activity without counting the jobs table per request.
--
-- PostgreSQL keeps them itself, with statement-level triggers over transition
-- tables, so every writer (enqueue, claims, completions, retries, cancels, deletes,
-- clean, retention, manual SQL) is covered. Writers only ever INSERT into the
-- append-only *_deltas tables (no row is updated by two writers, so no contention);
-- a compaction (Store::compact_counters, about every second from conveyor-api and
-- conveyor-scheduler) moves the deltas into the compacted tables in one statement.
-- Readers sum compacted rows + deltas in one snapshot, so they are exact between
-- compactions too.

-- Writers must wait while the counters are backfilled from the rows present now.
LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;
LOCK TABLE job_executions IN SHARE ROW EXCLUSIVE MODE;

-- Jobs by (queue, type, status).
CREATE TABLE job_counts (
    queue_name text   NOT NULL,
    job_type   text   NOT NULL,
    status     text   NOT NULL,
    n          bigint NOT NULL,
    PRIMARY KEY (queue_name, job_type, status)
);
CREATE TABLE job_count_deltas (
    queue_name text   NOT NULL,
    job_type   text   NOT NULL,
    status     text   NOT NULL,
    n          bigint NOT NULL
);

-- Recent activity in time buckets (kept 25 hours): kind 'completed' counts attempts
-- (job_executions) that COMPLETED, with their total duration; kind 'failed' counts
-- jobs whose record is FAILED, by completed_at. Writers use one-second buckets; the
-- compaction keeps one-second buckets for the last two minutes and rolls older ones
-- into one-minute buckets, so a 24-hour window reads at most ~1 560 rows.
CREATE TABLE job_activity (
    kind     text        NOT NULL CHECK (kind IN ('completed', 'failed')),
    bucket   timestamptz NOT NULL,
    n        bigint      NOT NULL,
    total_ms bigint      NOT NULL,
    PRIMARY KEY (kind, bucket)
);
CREATE TABLE job_activity_deltas (
    kind     text        NOT NULL,
    bucket   timestamptz NOT NULL,
    n        bigint      NOT NULL,
    total_ms bigint      NOT NULL
);

CREATE FUNCTION conveyor_jobs_counted_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue_name, job_type, status, n)
    SELECT queue_name, job_type, status, count(*) FROM new_jobs GROUP BY 1, 2, 3;
    INSERT INTO job_activity_deltas (kind, bucket, n, total_ms)
    SELECT 'failed', date_trunc('second', completed_at), count(*), 0 FROM new_jobs
    WHERE status = 'FAILED' AND completed_at > now() - interval '25 hours'
    GROUP BY 2;
    RETURN NULL;
END $$;

-- Updates that keep the status (progress, lease renewals, dispatch marks) net to 0
-- and write nothing.
CREATE FUNCTION conveyor_jobs_counted_update() RETURNS trigger
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
    RETURN NULL;
END $$;

CREATE FUNCTION conveyor_jobs_counted_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue_name, job_type, status, n)
    SELECT queue_name, job_type, status, -count(*) FROM old_jobs GROUP BY 1, 2, 3;
    INSERT INTO job_activity_deltas (kind, bucket, n, total_ms)
    SELECT 'failed', date_trunc('second', completed_at), -count(*), 0 FROM old_jobs
    WHERE status = 'FAILED' AND completed_at > now() - interval '25 hours'
    GROUP BY 2;
    RETURN NULL;
END $$;

CREATE FUNCTION conveyor_jobs_counted_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_counts;
    DELETE FROM job_count_deltas;
    DELETE FROM job_activity WHERE kind = 'failed';
    DELETE FROM job_activity_deltas WHERE kind = 'failed';
    RETURN NULL;
END $$;

-- Attempts are counted when they are logged; deleting a job record later does not
-- take its attempts back (they did complete).
CREATE FUNCTION conveyor_executions_counted_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_activity_deltas (kind, bucket, n, total_ms)
    SELECT 'completed', date_trunc('second', finished_at), count(*), sum(duration_ms)
    FROM new_executions
    WHERE status = 'COMPLETED' AND finished_at > now() - interval '25 hours'
    GROUP BY 2;
    RETURN NULL;
END $$;

CREATE FUNCTION conveyor_executions_counted_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_activity WHERE kind = 'completed';
    DELETE FROM job_activity_deltas WHERE kind = 'completed';
    RETURN NULL;
END $$;

-- Transition tables need one trigger per event.
CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_jobs_counted_insert();
CREATE TRIGGER jobs_counted_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_jobs_counted_update();
CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_jobs_counted_delete();
CREATE TRIGGER jobs_counted_truncate AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_jobs_counted_truncate();
CREATE TRIGGER job_executions_counted_insert AFTER INSERT ON job_executions
    REFERENCING NEW TABLE AS new_executions
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_executions_counted_insert();
CREATE TRIGGER job_executions_counted_truncate AFTER TRUNCATE ON job_executions
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_executions_counted_truncate();

-- Backfill from the rows present now (the locks above keep writers out).
INSERT INTO job_counts (queue_name, job_type, status, n)
SELECT queue_name, job_type, status, count(*) FROM jobs GROUP BY 1, 2, 3;

INSERT INTO job_activity (kind, bucket, n, total_ms)
SELECT kind, bucket, sum(n), sum(total_ms) FROM (
    SELECT 'completed' AS kind,
           CASE WHEN finished_at >= now() - interval '2 minutes'
                THEN date_trunc('second', finished_at)
                ELSE date_trunc('minute', finished_at) END AS bucket,
           1 AS n, duration_ms AS total_ms
    FROM job_executions
    WHERE status = 'COMPLETED' AND finished_at > now() - interval '25 hours'
    UNION ALL
    SELECT 'failed',
           CASE WHEN completed_at >= now() - interval '2 minutes'
                THEN date_trunc('second', completed_at)
                ELSE date_trunc('minute', completed_at) END,
           1, 0
    FROM jobs
    WHERE status = 'FAILED' AND completed_at > now() - interval '25 hours'
) a
GROUP BY 1, 2;
