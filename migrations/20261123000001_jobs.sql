-- Conveyor's job records. PostgreSQL is the source of truth: Redis only carries ids
-- for fast dispatch, and every state change of a job is written here first.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    queue_name       text        NOT NULL,
    job_type         text        NOT NULL,
    status           text        NOT NULL CHECK (status IN
                        ('PENDING','DELAYED','RUNNING','RETRYING','COMPLETED','FAILED','CANCELLED')),
    payload          jsonb       NOT NULL,
    result           jsonb,
    error            text,
    -- attempts started so far; the claim increments it and every later write of that
    -- attempt is guarded by it (the fencing token).
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL CHECK (max_attempts >= 1),
    priority         integer     NOT NULL DEFAULT 5,
    progress         smallint    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    progress_message text,
    parent_id        uuid        REFERENCES jobs (id) ON DELETE SET NULL,
    idempotency_key  text,
    run_at           timestamptz NOT NULL,
    timeout_ms       integer,             -- NULL: the queue's timeout
    backoff          jsonb,               -- NULL: the queue's backoff
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    completed_at     timestamptz,
    cancel_requested boolean     NOT NULL DEFAULT false,
    -- Runs of the job: an admin retry of a finished job starts run + 1 with attempts
    -- back at 0, and the attempts of earlier runs stay in the log.
    runs             integer     NOT NULL DEFAULT 1,
    worker_id        text,                -- the worker process holding the current attempt
    -- A RUNNING job whose lease ran out is recovered; its worker's heartbeat renews it.
    lease_expires_at timestamptz,
    -- NULL until the id is known to be in Redis; the reconciler re-dispatches jobs
    -- whose record committed but whose Redis push never happened (Redis down, crash,
    -- transactional enqueue).
    dispatched_at    timestamptz
);

-- List filters (newest first) and the per-queue views of the admin API.
CREATE INDEX jobs_created_idx        ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_queue_status_idx   ON jobs (queue_name, status, created_at DESC);
CREATE INDEX jobs_status_idx         ON jobs (status, created_at DESC);
CREATE INDEX jobs_type_idx           ON jobs (job_type, created_at DESC);
CREATE INDEX jobs_parent_idx         ON jobs (parent_id, created_at DESC) WHERE parent_id IS NOT NULL;
-- Idempotency: one job per key and queue for as long as the record exists.
CREATE UNIQUE INDEX jobs_idempotency_idx ON jobs (queue_name, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- What the engine itself queries: waiting jobs not yet in Redis, running jobs per worker.
CREATE INDEX jobs_undispatched_idx   ON jobs (queue_name, run_at)
    WHERE dispatched_at IS NULL AND status IN ('PENDING','DELAYED','RETRYING');
CREATE INDEX jobs_running_lease_idx  ON jobs (lease_expires_at) WHERE status = 'RUNNING';

-- One row per attempt: who ran it, when, how it ended.
CREATE TABLE job_executions (
    job_id      uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    run         integer     NOT NULL DEFAULT 1,
    attempt     integer     NOT NULL,
    worker_id   text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('COMPLETED','FAILED','LOST','CANCELLED')),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    duration_ms bigint      NOT NULL,
    error       text,
    PRIMARY KEY (job_id, run, attempt)
);
-- The status, summary and error reports read recent attempts by outcome.
CREATE INDEX job_executions_status_finished_idx ON job_executions (status, finished_at DESC);

-- Per-queue state that must survive a Redis loss.
CREATE TABLE queue_state (
    queue_name text PRIMARY KEY,
    paused     boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Live worker processes; a heartbeat renews the lease of every job a worker holds.
CREATE TABLE workers (
    id             text PRIMARY KEY,
    host           text        NOT NULL,
    pid            integer     NOT NULL,
    queues         text[]      NOT NULL,
    concurrency    integer     NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    last_heartbeat timestamptz NOT NULL DEFAULT now()
);
