//! The engine end to end: each test enqueues through the library, runs a worker
//! (in-process, or the real binary where processes matter) and asserts on the
//! PostgreSQL record and, where it matters, the Redis keys.

use std::time::Duration;

use chrono::Utc;
use conveyor_tests::{wait_for, TestEnv};
use queue_core::job::{Backoff, ExecutionStatus, JobStatus, NewJob, Priority};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";
const LONG: Duration = Duration::from_secs(30);

fn job(job_type: &str, payload: serde_json::Value) -> NewJob {
    NewJob::new(Q, job_type, payload)
}

#[sqlx::test]
async fn echo_job_goes_from_enqueue_to_completed_with_its_result(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let worker = env.worker(&[Q], None);
    let enqueued = env
        .conveyor
        .enqueue(job("ECHO", json!({"hello": "world"})))
        .await
        .unwrap();
    assert!(enqueued.created);
    assert_eq!(enqueued.job.status, JobStatus::Pending);

    let done = env
        .wait_status(enqueued.job.id, JobStatus::Completed, LONG)
        .await;
    assert_eq!(done.result, Some(json!({"hello": "world"})));
    assert_eq!(done.attempts, 1);
    assert_eq!(done.progress, 100);
    assert!(done.started_at.is_some() && done.completed_at.is_some());
    let executions = env.executions(done.id).await;
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].status, ExecutionStatus::Completed);
    assert_eq!(executions[0].worker_id, worker.id);
    worker.stop().await;

    // Nothing of the job is left in flight in Redis.
    assert_eq!(env.zcard(&env.conveyor.broker().keys(Q).inflight).await, 0);
}

#[sqlx::test]
async fn strict_priority_then_fifo_with_concurrency_one(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    // Interleave levels so neither insertion order nor ids give the answer away.
    let levels = [
        Priority::LOW,
        Priority::CRITICAL,
        Priority::NORMAL,
        Priority::HIGH,
    ];
    let mut expected: Vec<(i32, usize, Uuid)> = Vec::new();
    for round in 0..3 {
        for level in levels {
            let id = env.enqueue(job("NOOP", json!({})).priority(level)).await;
            expected.push((level.get(), round, id));
        }
    }
    // Highest priority first, FIFO (enqueue order) within a level.
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));

    let worker = env.worker(&[Q], Some(1));
    env.wait_count(JobStatus::Completed, 12, LONG).await;
    worker.stop().await;
    let order: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY started_at")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    let expected: Vec<Uuid> = expected.into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(order, expected);
}

#[sqlx::test]
async fn delayed_job_does_not_start_before_its_run_at(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let worker = env.worker(&[Q], None);
    let run_at = Utc::now() + chrono::Duration::milliseconds(1_500);
    let enqueued = env
        .conveyor
        .enqueue(job("NOOP", json!({})).run_at(run_at))
        .await
        .unwrap();
    assert_eq!(enqueued.job.status, JobStatus::Delayed);

    // It sits in the delayed set, scored by its run-at.
    let mut redis = env.redis().await;
    let member = format!("5|{}", enqueued.job.id);
    let score: Option<i64> = redis::cmd("ZSCORE")
        .arg(format!("{}:{{{Q}}}:delayed", env.prefix))
        .arg(&member)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(score, Some(enqueued.job.run_at.timestamp_millis()));

    let done = env
        .wait_status(enqueued.job.id, JobStatus::Completed, LONG)
        .await;
    let started = done.started_at.unwrap();
    assert!(
        started >= enqueued.job.run_at,
        "started {started} before run_at {}",
        enqueued.job.run_at
    );
    // …and not long after it: the worker slept until the run-at, it did not poll.
    assert!(
        started - enqueued.job.run_at < chrono::Duration::seconds(1),
        "started late: {started}"
    );
    worker.stop().await;
}

#[sqlx::test]
async fn fail_twice_then_complete_on_the_third_attempt(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let worker = env.worker(&[Q], None);
    let id = env
        .enqueue(
            job("FAIL", json!({"failTimes": 2, "message": "flaky"}))
                .max_attempts(3)
                .backoff(Backoff::Fixed { delay_ms: 50 }),
        )
        .await;
    let done = env.wait_status(id, JobStatus::Completed, LONG).await;
    assert_eq!(done.attempts, 3);
    assert_eq!(done.result, Some(json!({"succeededOnAttempt": 3})));
    let executions = env.executions(id).await;
    let statuses: Vec<(i32, &str)> = executions
        .iter()
        .map(|e| (e.attempt, e.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        vec![(1, "FAILED"), (2, "FAILED"), (3, "COMPLETED")]
    );
    assert_eq!(executions[0].error.as_deref(), Some("flaky"));
    worker.stop().await;
}

#[sqlx::test]
async fn always_failing_job_ends_failed_in_the_dead_letter_stream_with_growing_backoff(
    pool: PgPool,
) {
    let env = TestEnv::new(pool).await;
    let worker = env.worker(&[Q], None);
    let backoff = Backoff::Exponential {
        delay_ms: 150,
        max_delay_ms: 10_000,
        jitter: false,
    };
    let id = env
        .enqueue(
            job("FAIL", json!({"message": "always"}))
                .max_attempts(4)
                .backoff(backoff),
        )
        .await;
    let failed = env.wait_status(id, JobStatus::Failed, LONG).await;
    assert_eq!(failed.attempts, 4);
    assert_eq!(failed.error.as_deref(), Some("always"));
    assert!(failed.completed_at.is_some());

    let executions = env.executions(id).await;
    assert_eq!(executions.len(), 4);
    // Gap between one attempt's end and the next one's start: 150, 300, 600 ms.
    let gaps: Vec<i64> = executions
        .windows(2)
        .map(|w| (w[1].started_at - w[0].finished_at).num_milliseconds())
        .collect();
    for (gap, expected) in gaps.iter().zip([150, 300, 600]) {
        assert!(
            *gap >= expected - 5,
            "gaps {gaps:?}: expected at least {expected}"
        );
    }
    assert!(
        gaps.windows(2).all(|w| w[1] > w[0]),
        "backoff gaps do not grow: {gaps:?}"
    );

    let entries = env.dead_letters(Q).await;
    assert_eq!(entries.len(), 1);
    let fields = &entries[0];
    assert_eq!(fields["jobId"], id.to_string());
    assert_eq!(fields["jobType"], "FAIL");
    assert_eq!(fields["error"], "always");
    assert_eq!(fields["attempts"], "4");
    assert!(fields.contains_key("failedAt"));
    worker.stop().await;
}

#[sqlx::test]
async fn permanent_error_fails_after_one_attempt(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let worker = env.worker(&[Q], None);
    let id = env
        .enqueue(job("FAIL", json!({"message": "bad input", "retryable": false})).max_attempts(5))
        .await;
    let failed = env.wait_status(id, JobStatus::Failed, LONG).await;
    assert_eq!(failed.attempts, 1);
    assert_eq!(env.executions(id).await.len(), 1);
    worker.stop().await;
}

#[sqlx::test]
async fn a_panicking_handler_fails_its_attempt_and_the_worker_goes_on(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let worker = env.worker(&[Q], Some(1));
    let panicking = env.enqueue(job("PANIC", json!({})).max_attempts(1)).await;
    let failed = env.wait_status(panicking, JobStatus::Failed, LONG).await;
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .contains("diagnostic panic requested"),
        "{:?}",
        failed.error
    );
    assert_eq!(
        env.executions(panicking).await[0].status,
        ExecutionStatus::Failed
    );

    let after = env.enqueue(job("ECHO", json!({"still": "alive"}))).await;
    env.wait_status(after, JobStatus::Completed, LONG).await;
    assert!(!worker.handle.is_finished());
    worker.stop().await;
}

#[sqlx::test]
async fn a_timeout_fails_the_attempt_and_cancels_the_handler(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let worker = env.worker(&[Q], Some(1));
    let id = env
        .enqueue(
            job("SLEEP", json!({"ms": 20_000}))
                .timeout_ms(300)
                .max_attempts(1),
        )
        .await;
    let failed = env.wait_status(id, JobStatus::Failed, LONG).await;
    assert_eq!(failed.error.as_deref(), Some("timed out after 300 ms"));
    let execution = &env.executions(id).await[0];
    // The handler honoured its cancellation: the attempt ended at the timeout, not
    // after the 20 s sleep or the 5 s abort grace.
    assert!(
        execution.duration_ms < 2_000,
        "attempt took {} ms",
        execution.duration_ms
    );

    // The slot is free again (concurrency 1).
    let next = env.enqueue(job("NOOP", json!({}))).await;
    env.wait_status(next, JobStatus::Completed, Duration::from_secs(5))
        .await;
    worker.stop().await;
}

#[sqlx::test]
async fn rate_limit_of_ten_per_second_holds_across_two_worker_processes(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let limit = [("CONVEYOR__QUEUES__DIAGNOSTICS__RATE_LIMIT__MAX", "10")];
    // Two slots each: one claim takes at most two of a window's ten, so both
    // processes claim in every window (with 50 slots, whichever woke first could
    // take a whole window each time).
    let _a = env.spawn_worker(&["--queues", Q, "--concurrency", "2"], &limit);
    let _b = env.spawn_worker(&["--queues", Q, "--concurrency", "2"], &limit);
    // Both processes up before the jobs arrive (a slow start on a loaded machine
    // would leave every job to the first).
    env.wait_workers(2, Duration::from_secs(60)).await;
    let ids = env
        .conveyor
        .enqueue_many((0..35).map(|_| job("NOOP", json!({}))).collect())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    env.wait_count(
        JobStatus::Completed,
        ids.len() as i64,
        Duration::from_secs(60),
    )
    .await;
    // 35 jobs at 10/s need at least 3 full windows after the first 10.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "35 jobs finished in {:?}",
        started.elapsed()
    );

    let starts: Vec<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT started_at FROM jobs ORDER BY started_at")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    // No sliding one-second window holds more than 10 starts (50 ms of slack for the
    // gap between Redis's clock, which enforces the window, and PostgreSQL's).
    for (i, first) in starts.iter().enumerate() {
        let in_window = starts[i..]
            .iter()
            .take_while(|t| **t - *first < chrono::Duration::milliseconds(950))
            .count();
        assert!(
            in_window <= 10,
            "{in_window} starts within one second from {first}"
        );
    }
    let workers: i64 = sqlx::query_scalar("SELECT count(DISTINCT worker_id) FROM jobs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(workers, 2, "both processes took jobs");
}

#[sqlx::test]
async fn pause_stops_new_claims_and_resume_restarts_them(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let worker = env.worker(&[Q], None);
    env.conveyor.set_paused(Q, true).await.unwrap();
    let id = env.enqueue(job("NOOP", json!({}))).await;
    // Proves what does not happen: the job is not claimed while the queue is
    // paused (a paused worker looks again every 500 ms; this covers two looks).
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(env.job(id).await.status, JobStatus::Pending);

    env.conveyor.set_paused(Q, false).await.unwrap();
    env.wait_status(id, JobStatus::Completed, Duration::from_secs(5))
        .await;
    worker.stop().await;
}

#[sqlx::test]
async fn the_same_idempotency_key_returns_the_first_job(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let first = env
        .conveyor
        .enqueue(job("ECHO", json!({"n": 1})).idempotency_key("order-42"))
        .await
        .unwrap();
    let second = env
        .conveyor
        .enqueue(job("ECHO", json!({"n": 2})).idempotency_key("order-42"))
        .await
        .unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(second.job.id, first.job.id);
    assert_eq!(second.job.payload, json!({"n": 1}));
    // In a bulk too, and within one bulk.
    let ids = env
        .conveyor
        .enqueue_many(vec![
            job("ECHO", json!({})).idempotency_key("order-42"),
            job("ECHO", json!({})).idempotency_key("order-43"),
            job("ECHO", json!({})).idempotency_key("order-43"),
        ])
        .await
        .unwrap();
    assert_eq!(ids[0], first.job.id);
    assert_eq!(ids[1], ids[2]);
    assert_eq!(env.job_rows().await, 2);
}

#[sqlx::test]
async fn a_bulk_of_ten_thousand_jobs_all_complete(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let ids = env
        .conveyor
        .enqueue_many((0..10_000).map(|i| job("ECHO", json!({"i": i}))).collect())
        .await
        .unwrap();
    assert_eq!(ids.len(), 10_000);
    assert_eq!(
        env.zcard(&env.conveyor.broker().keys(Q).ready).await,
        10_000
    );

    let _worker = env.spawn_worker(&["--queues", Q, "--concurrency", "100"], &[]);
    env.wait_count(JobStatus::Completed, 10_000, Duration::from_secs(120))
        .await;
    let executions: i64 = sqlx::query_scalar("SELECT count(*) FROM job_attempts")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(executions, 10_000);
}

#[sqlx::test]
async fn a_bulk_with_one_bad_job_records_nothing(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let err = env
        .conveyor
        .enqueue_many(vec![
            job("NOOP", json!({})),
            job("SLEEP", json!({"ms": -1})),
            job("NOOP", json!({})),
        ])
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("jobs[1].payload.ms"), "{err}");
    assert_eq!(env.job_rows().await, 0);
}

#[sqlx::test]
async fn sigterm_lets_short_jobs_finish_and_gives_long_ones_back_uncounted(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let long: Vec<Uuid> = env
        .conveyor
        .enqueue_many(
            (0..3)
                .map(|_| job("SLEEP", json!({"ms": 60_000})))
                .collect(),
        )
        .await
        .unwrap();
    let short = env.enqueue(job("SLEEP", json!({"ms": 700}))).await;
    let worker = env.spawn_worker(
        &["--queues", Q],
        &[("CONVEYOR__WORKER__DRAIN_TIMEOUT_MS", "1500")],
    );
    for id in long.iter().chain([&short]) {
        env.wait_status(*id, JobStatus::Running, LONG).await;
    }
    env.signal(&worker, "TERM");
    assert!(
        env.wait_exit(&worker, Duration::from_secs(20)).await,
        "worker exits cleanly"
    );

    env.wait_status(short, JobStatus::Completed, Duration::from_secs(1))
        .await;
    for id in &long {
        let job = env.job(*id).await;
        assert_eq!(job.status, JobStatus::Pending, "{job:?}");
        assert_eq!(job.attempts, 0, "the interrupted attempt is not counted");
        assert!(env.executions(*id).await.is_empty());
    }
    // Given back to Redis: a new worker takes them at once.
    assert_eq!(env.zcard(&env.conveyor.broker().keys(Q).ready).await, 3);
    let _next = env.spawn_worker(&["--queues", Q], &[]);
    for id in &long {
        let job = env.wait_status(*id, JobStatus::Running, LONG).await;
        assert_eq!(job.attempts, 1);
    }
}

#[sqlx::test]
async fn a_job_enqueued_in_a_transaction_is_dispatched_only_after_commit(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let worker = env.worker(&[Q], None);

    let mut tx = env.pool.begin().await.unwrap();
    let rolled_back = env
        .conveyor
        .enqueue_in_tx(&mut tx, job("ECHO", json!({"n": 0})))
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = env.pool.begin().await.unwrap();
    let id = env
        .conveyor
        .enqueue_in_tx(&mut tx, job("ECHO", json!({"n": 1})))
        .await
        .unwrap();
    // Not in Redis before the commit.
    assert!(!env.in_ready_set(Q, id).await);
    // Nor visible to anyone else (so no worker could claim it).
    assert!(env.conveyor.store().get_job(id).await.unwrap().is_none());
    tx.commit().await.unwrap();

    // Well before the periodic sweep (5 s): the commit's NOTIFY woke the dispatcher.
    let done = env
        .wait_status(id, JobStatus::Completed, Duration::from_secs(3))
        .await;
    assert_eq!(done.result, Some(json!({"n": 1})));
    assert!(env
        .conveyor
        .store()
        .get_job(rolled_back)
        .await
        .unwrap()
        .is_none());
    worker.stop().await;
}

#[sqlx::test]
async fn progress_reports_are_recorded(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let worker = env.worker(&[Q], None);
    let id = env
        .enqueue(job("PROGRESS", json!({"steps": 4, "stepMs": 300})))
        .await;
    // Midway, the record shows partial progress with its message.
    let midway = wait_for(LONG, || async {
        let job = env.job(id).await;
        assert_ne!(job.status, JobStatus::Completed, "no partial progress seen");
        if job.status == JobStatus::Running && (1..100).contains(&job.progress) {
            Ok(job)
        } else {
            Err(format!("no partial progress seen: {job:?}"))
        }
    })
    .await;
    assert!(
        midway
            .progress_message
            .as_deref()
            .unwrap()
            .starts_with("step "),
        "{midway:?}"
    );
    let done = env.wait_status(id, JobStatus::Completed, LONG).await;
    assert_eq!(done.progress, 100);
    worker.stop().await;
}

#[sqlx::test]
async fn worker_identities_are_unique_per_start(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let a = env.worker(&[Q], None);
    let b = env.worker(&[Q], None);
    assert_ne!(a.id, b.id);
    assert!(
        a.id.contains(&std::process::id().to_string()),
        "{} names the pid",
        a.id
    );
    a.stop().await;
    b.stop().await;
}

#[sqlx::test]
async fn a_second_sigterm_gives_running_jobs_back_at_once(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let ids: Vec<Uuid> = env
        .conveyor
        .enqueue_many(
            (0..2)
                .map(|_| job("SLEEP", json!({"ms": 60_000})))
                .collect(),
        )
        .await
        .unwrap();
    // A drain timeout far longer than the test: only the second signal can end it.
    let worker = env.spawn_worker(
        &["--queues", Q],
        &[("CONVEYOR__WORKER__DRAIN_TIMEOUT_MS", "600000")],
    );
    for id in &ids {
        env.wait_status(*id, JobStatus::Running, LONG).await;
    }
    env.signal(&worker, "TERM");
    // Proves what does not happen: the first signal alone does not end the drain.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        env.is_running(&worker),
        "still draining after the first signal"
    );
    env.signal(&worker, "TERM");
    assert!(
        env.wait_exit(&worker, Duration::from_secs(10)).await,
        "worker exits cleanly"
    );
    for id in &ids {
        let job = env.job(*id).await;
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Pending, 0),
            "{job:?}"
        );
    }
}

#[sqlx::test]
async fn pushing_a_job_again_keeps_its_place_in_the_queue(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let first = env
        .conveyor
        .enqueue(job("NOOP", json!({})))
        .await
        .unwrap()
        .job;
    let second = env
        .conveyor
        .enqueue(job("NOOP", json!({})))
        .await
        .unwrap()
        .job;
    let ready = format!("{}:{{{Q}}}:ready", env.prefix);
    let mut redis = env.redis().await;
    let score = |id: Uuid| {
        redis::cmd("ZSCORE")
            .arg(&ready)
            .arg(id.to_string())
            .to_owned()
    };
    let before: f64 = score(first.id).query_async(&mut redis).await.unwrap();

    // What the reconciler does when it cannot tell whether an id is in Redis.
    let again = queue_core::broker::Dispatch {
        queue: Q.into(),
        id: first.id,
        priority: 5,
        run_at: None,
    };
    env.conveyor.broker().push(&[again]).await.unwrap();
    let after: f64 = score(first.id).query_async(&mut redis).await.unwrap();
    let behind: f64 = score(second.id).query_async(&mut redis).await.unwrap();
    assert_eq!(after, before);
    assert!(after < behind, "the first job is still ahead of the second");
}

#[sqlx::test]
async fn concurrent_single_enqueues_share_inserts_and_one_bad_job_fails_alone(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    // 40 callers at once; one names a parent that does not exist (a foreign key
    // violation inside whatever batch it lands in).
    let bad = 17;
    let calls = (0..40).map(|i| {
        let conveyor = env.conveyor.clone();
        let mut new = job("NOOP", json!({}));
        if i == bad {
            new.parent_id = Some(Uuid::now_v7());
        }
        async move { conveyor.enqueue(new).await }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_err(), i == bad, "call {i}: {r:?}");
    }
    let ids: Vec<Uuid> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|e| e.job.id)
        .collect();
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 39);
    assert_eq!(env.job_rows().await, 39, "the bad job left no record");
    // Every recorded job was pushed (its id is in the ready set).
    assert_eq!(env.zcard(&env.conveyor.broker().keys(Q).ready).await, 39);
}
