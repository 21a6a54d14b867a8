-- Cron-scheduled jobs (conveyor-scheduler). Every fire enqueues a job whose
-- idempotency key is `schedule:{id}:{tick unix ms}`, so the jobs table's unique index
-- makes a tick fire at most once however many schedulers run.

CREATE TABLE scheduled_jobs (
    id              uuid PRIMARY KEY,
    name            text        NOT NULL UNIQUE,
    description     text,
    queue_name      text        NOT NULL,
    job_type        text        NOT NULL,
    -- 6 or 7 fields with seconds, or a classic 5-field expression.
    cron_expression text        NOT NULL,
    timezone        text        NOT NULL DEFAULT 'Asia/Shanghai',
    -- 1 enabled, 0 disabled, 2 paused.
    status          smallint    NOT NULL DEFAULT 1 CHECK (status IN (0, 1, 2)),
    payload         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    retry_attempts  integer,             -- max attempts of each job; NULL: the queue's
    retry_delay_ms  bigint,              -- fixed backoff; NULL: the queue's backoff
    timeout_ms      integer,             -- NULL: the queue's timeout
    priority        integer     NOT NULL DEFAULT 5,
    -- What to do with ticks missed while no scheduler ran; NULL: [scheduler] misfire.
    misfire_policy  text        CHECK (misfire_policy IN ('coalesce', 'skip', 'all')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    last_run_at     timestamptz,
    next_run_at     timestamptz,
    last_job_id     uuid
);

-- The scheduler's query: enabled schedules that are due.
CREATE INDEX scheduled_jobs_due_idx ON scheduled_jobs (next_run_at) WHERE status = 1;
