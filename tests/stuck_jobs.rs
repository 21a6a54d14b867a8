//! Windows in which a job could get stuck or a stale attempt could write: each test
//! recreates one with the real engine on the real services and checks the job ends
//! where it should.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::Utc;
use conveyor_tests::http::TestApi;
use conveyor_tests::{wait_for, TestEnv};
use queue_core::job::{ExecutionStatus, JobStatus, NewJob, MAX_DELAY_MS};
use queue_core::store::{FinalState, FinishedAttempt};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";

#[sqlx::test]
async fn a_backoff_beyond_any_bound_waits_the_longest_delay_instead_of_pinning_the_job(
    pool: PgPool,
) {
    let env = TestEnv::new(pool).await;
    let job = NewJob::new(Q, "FAIL", json!({"retryable": true})).max_attempts(3);
    let id = env.enqueue(job).await;
    // A record written before input was bounded (or by hand): the engine must cope.
    sqlx::query("UPDATE jobs SET backoff = $2 WHERE id = $1")
        .bind(id)
        .bind(json!({"type": "fixed", "delay_ms": u64::MAX}))
        .execute(&env.pool)
        .await
        .unwrap();
    let worker = env.worker(&[Q], Some(1));
    let job = env
        .wait_status(id, JobStatus::Retrying, Duration::from_secs(15))
        .await;
    let waits = (job.run_at - Utc::now()).num_milliseconds() as u64;
    assert!(
        waits > MAX_DELAY_MS - 60_000 && waits <= MAX_DELAY_MS,
        "runs again in {waits} ms"
    );
    worker.stop().await;
}

#[sqlx::test]
async fn backoffs_and_retry_delays_beyond_a_year_are_refused_at_input(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let too_long = MAX_DELAY_MS + 1;
    for backoff in [
        json!({"type": "fixed", "delayMs": too_long}),
        json!({"type": "exponential", "delayMs": 1000, "maxDelayMs": too_long}),
        json!({"type": "exponential", "delayMs": u64::MAX}),
    ] {
        let body = json!({"queueName": Q, "jobType": "NOOP", "payload": {}, "backoff": backoff});
        let reply = api.post("/api/admin/jobs", body).await;
        let message = reply.assert_error(StatusCode::BAD_REQUEST, "invalid_field");
        assert!(message.starts_with("backoff: "), "{backoff}: {message}");
    }
    let schedule = json!({"name": "too-patient", "queueName": Q, "jobType": "NOOP",
                          "cronExpression": "0 0 2 * * *", "retryDelay": too_long});
    let reply = api.post("/api/admin/scheduled-jobs", schedule).await;
    let message = reply.assert_error(StatusCode::BAD_REQUEST, "invalid_field");
    assert!(message.starts_with("retryDelay: "), "{message}");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "nothing was recorded");
}

#[sqlx::test]
async fn a_nul_character_in_a_payload_or_key_is_a_400_naming_the_field(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let cases = [
        (json!({"a": ["ok", "x\u{0}y"]}), None, "payload.a[1]"),
        (json!({"k\u{0}": 1}), None, "payload.k\u{0}"),
        (json!({}), Some("key\u{0}"), "idempotencyKey"),
    ];
    for (payload, key, field) in cases {
        let body = json!({"queueName": Q, "jobType": "ECHO", "payload": payload,
                          "idempotencyKey": key});
        let reply = api.post("/api/admin/jobs", body).await;
        let message = reply.assert_error(StatusCode::BAD_REQUEST, "invalid_field");
        assert!(message.starts_with(&format!("{field}: ")), "{message}");
    }
    let bulk = json!({"jobs": [{"queueName": Q, "jobType": "ECHO", "payload": {}},
                               {"queueName": Q, "jobType": "ECHO", "payload": {"t": "\u{0}"}}]});
    let reply = api.post("/api/admin/jobs/bulk", bulk).await;
    let message = reply.assert_error(StatusCode::BAD_REQUEST, "invalid_field");
    assert!(message.starts_with("jobs[1].payload.t: "), "{message}");
    assert_eq!(env.count(JobStatus::Pending).await, 0);
}

#[sqlx::test]
async fn an_id_redis_promotes_before_postgres_finds_it_due_runs_once_it_is_due(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    // A running worker has rebuilt the queue once (a first look at Redis), so what
    // follows is the claim's doing alone.
    let worker = env.worker(&[Q], Some(1));
    env.wait_queue_known_to_redis(Q).await;
    let delay = Duration::from_secs(3);
    let job = NewJob::new(Q, "ECHO", json!({})).run_at(Utc::now() + delay);
    let enqueued = Instant::now();
    let id = env.enqueue(job).await;
    // What a Redis clock running ahead of PostgreSQL's does: the id is ready early.
    let keys = env.conveyor.broker().keys(Q);
    let mut redis = env.redis().await;
    let _: () = redis::pipe()
        .zrem(&keys.delayed, format!("5|{id}"))
        .zadd(&keys.ready, id.to_string(), 0)
        .zadd(&keys.marker, "0", 0)
        .query_async(&mut redis)
        .await
        .unwrap();
    let job = env
        .wait_status(id, JobStatus::Completed, Duration::from_secs(10))
        .await;
    let started = job.started_at.expect("started");
    assert!(
        started >= job.run_at - chrono::Duration::seconds(1),
        "started at {started}, due at {}",
        job.run_at
    );
    // Put back by the claim that refused it, not by the periodic check of waiting
    // jobs (which leaves jobs younger than 5 s alone).
    assert!(
        enqueued.elapsed() < Duration::from_millis(4_800),
        "completed {:?} after enqueue",
        enqueued.elapsed()
    );
    assert_eq!(env.executions(id).await.len(), 1);
    worker.stop().await;
}

#[sqlx::test]
async fn a_waiting_job_redis_lost_without_losing_its_marker_is_put_back(pool: PgPool) {
    let env = TestEnv::with_config(pool, |c| c.worker.reconcile_ms = 500).await;
    let worker = env.worker(&[Q], Some(4));
    env.wait_queue_known_to_redis(Q).await;
    env.conveyor.set_paused(Q, true).await.unwrap();
    let ids = env
        .conveyor
        .enqueue_many((0..50).map(|_| NewJob::new(Q, "NOOP", json!({}))).collect())
        .await
        .unwrap();
    // A partial loss: the queue's ids vanish, its generation marker stays.
    let keys = env.conveyor.broker().keys(Q);
    let mut redis = env.redis().await;
    let _: () = redis::cmd("DEL")
        .arg(&keys.ready)
        .query_async(&mut redis)
        .await
        .unwrap();
    env.conveyor.set_paused(Q, false).await.unwrap();
    let lost_at = Instant::now();
    env.wait_count(JobStatus::Completed, 50, Duration::from_secs(20))
        .await;
    // Jobs younger than 5 s are left to their writer; one 500 ms round after that.
    assert!(
        lost_at.elapsed() < Duration::from_secs(15),
        "put back after {:?}",
        lost_at.elapsed()
    );
    for id in ids {
        assert_eq!(env.executions(id).await.len(), 1);
    }
    worker.stop().await;
}

#[sqlx::test]
async fn an_attempt_of_an_earlier_run_cannot_write_to_the_current_run(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let store = env.conveyor.store();
    let job = NewJob::new(Q, "ECHO", json!({})).max_attempts(1);
    let id = env.enqueue(job).await;
    let lease = Duration::from_secs(30);

    // Worker A claims run 1's attempt 1 and freezes; its lease runs out.
    let zombie = store
        .claim(&[id], "worker-a", lease)
        .await
        .unwrap()
        .remove(0);
    sqlx::query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&env.pool)
        .await
        .unwrap();
    let recovered = store.recover_expired(10, &[]).await.unwrap();
    assert_eq!(recovered[0].status, JobStatus::Failed);
    // An admin retries the job; worker B claims run 2's attempt 1.
    env.conveyor.retry(id).await.unwrap();
    let current = store
        .claim(&[id], "worker-b", lease)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((current.runs, current.attempts), (2, 1));

    // A wakes up and reports its attempt 1 done.
    let late = FinishedAttempt {
        id,
        run: zombie.runs,
        attempt: zombie.attempts,
        worker_id: "worker-a".into(),
        started_at: zombie.started_at,
        finished_at: Utc::now(),
        state: FinalState::Completed(json!({"from": "worker-a"})),
    };
    let written = store.finish(&[late], Uuid::new_v4()).await.unwrap();
    assert!(written.is_empty(), "the stale attempt wrote {written:?}");
    let job = env.job(id).await;
    assert_eq!((job.status, job.result), (JobStatus::Running, None));

    // B's own completion is the one recorded.
    let own = FinishedAttempt {
        id,
        run: current.runs,
        attempt: current.attempts,
        worker_id: "worker-b".into(),
        started_at: current.started_at,
        finished_at: Utc::now(),
        state: FinalState::Completed(json!({"from": "worker-b"})),
    };
    assert_eq!(store.finish(&[own], Uuid::new_v4()).await.unwrap().len(), 1);
    let job = env.job(id).await;
    assert_eq!(job.result, Some(json!({"from": "worker-b"})));
    let completed: Vec<(i32, String)> = sqlx::query_as(
        "SELECT run, worker_id FROM job_attempts WHERE job_id = $1 AND status = 'COMPLETED'",
    )
    .bind(id)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(completed, vec![(2, "worker-b".to_string())]);
}

/// Makes PostgreSQL refuse inserts and updates of `table` whose new row matches
/// `condition` with SQLSTATE `code` until [`unrefuse`] (a fault in one statement
/// while the rest of the database answers).
async fn refuse(pool: &PgPool, table: &str, condition: &str, code: &str) {
    sqlx::query(&format!(
        "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF {condition} THEN RAISE EXCEPTION 'refused by the test' USING ERRCODE = '{code}'; END IF;
             RETURN NEW;
         END $$"
    ))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "CREATE TRIGGER test_refuse BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION test_refuse()"
    ))
    .execute(pool)
    .await
    .unwrap();
}

async fn unrefuse(pool: &PgPool, table: &str) {
    sqlx::query(&format!("DROP TRIGGER test_refuse ON {table}"))
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("DROP FUNCTION test_refuse()")
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test]
async fn a_queue_redis_lost_while_its_rebuild_could_not_be_recorded_is_rebuilt_later(pool: PgPool) {
    let env = TestEnv::with_config(pool, |c| c.worker.reconcile_ms = 300).await;
    let worker = env.worker(&[Q], Some(4));
    env.wait_queue_known_to_redis(Q).await;
    env.conveyor.set_paused(Q, true).await.unwrap();
    let enqueued = Instant::now();
    let ids = env
        .conveyor
        .enqueue_many((0..20).map(|_| NewJob::new(Q, "NOOP", json!({}))).collect())
        .await
        .unwrap();
    // Redis loses the queue while PostgreSQL cannot record its rebuild (the outbox
    // rows that name the jobs to push again).
    refuse(
        &env.pool,
        "dispatch_outbox",
        "NOT NEW.writer_pushes",
        "57P01",
    )
    .await;
    let keys = env.conveyor.broker().keys(Q);
    let mut redis = env.redis().await;
    let _: () = redis::cmd("DEL")
        .arg(&keys.ready)
        .arg(format!("{}:{{{Q}}}:generation", env.prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    // Nothing shows a round failing to record the rebuild: let a few of them (one
    // every 300 ms) fail before the refusal is lifted.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    unrefuse(&env.pool, "dispatch_outbox").await;
    // (A worker may have run a few before the pause reached it: count the waiting.)
    let waiting = env.count(JobStatus::Pending).await as usize;
    assert!(waiting > 0 && waiting <= ids.len());
    wait_for(Duration::from_secs(2), || async {
        let back = env.zcard(&keys.ready).await as usize;
        if back == waiting {
            Ok(())
        } else {
            Err(format!("{back} of {waiting} waiting jobs back in redis"))
        }
    })
    .await;
    // Rebuilt by a later round, not by the periodic check of waiting jobs (which
    // leaves jobs younger than 5 s alone).
    assert!(enqueued.elapsed() < Duration::from_millis(4_800));
    env.conveyor.set_paused(Q, false).await.unwrap();
    env.wait_count(JobStatus::Completed, 20, Duration::from_secs(10))
        .await;
    worker.stop().await;
}

#[sqlx::test]
async fn a_finished_attempt_keeps_its_lease_while_its_outcome_cannot_be_written(pool: PgPool) {
    let env = TestEnv::with_config(pool, |c| {
        c.worker.lease_ms = 1_000;
        c.worker.heartbeat_ms = 250;
        c.worker.reconcile_ms = 250;
    })
    .await;
    // Completions fail as while PostgreSQL is unreachable; everything else works,
    // so lease recovery runs all along.
    refuse(&env.pool, "jobs", "NEW.status = 'COMPLETED'", "57P01").await;
    let worker = env.worker(&[Q], Some(1));
    let job = NewJob::new(Q, "SLEEP", json!({"ms": 50})).max_attempts(1);
    let id = env.enqueue(job).await;
    // Proves what does not happen: three leases pass after the 50 ms attempt
    // finished, and its lease is not recovered meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let job = env.job(id).await;
    assert_eq!(job.status, JobStatus::Running, "{job:?}");
    unrefuse(&env.pool, "jobs").await;
    let job = env
        .wait_status(id, JobStatus::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(job.attempts, 1);
    let executions = env.executions(id).await;
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].status, ExecutionStatus::Completed);
    worker.stop().await;
}
