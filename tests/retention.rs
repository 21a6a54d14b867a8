//! Retention (per-queue `retention`, applied by `conveyor-scheduler`): it deletes
//! exactly the finished records its policy names, in batches, through its index;
//! it runs beside the cron loop, so a large backlog of finished records never
//! delays a tick, and shutdown stops both.

use std::time::Duration;

use chrono::Utc;
use conveyor_tests::schedules::{assert_contiguous, assert_on_time, create, spec, ticks, within};
use conveyor_tests::{wait_for, TestEnv};
use queue_core::config::Retention;
use queue_core::job::JobStatus;
use queue_core::scheduler::Scheduler;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const Q: &str = "diagnostics";

/// How late a tick's job may be created (the scheduler suite's tolerance).
const TICK_TOLERANCE_MS: i64 = 500;

/// A retention policy: COMPLETED records older than `completed_max_age_s` go
/// unless among the newest `keep_completed`; FAILED ones likewise.
fn policy(
    completed_max_age_s: u64,
    keep_completed: u64,
    failed_max_age_s: u64,
    keep_failed: u64,
) -> Retention {
    Retention {
        completed_max_age_s,
        failed_max_age_s,
        keep_completed,
        keep_failed,
    }
}

/// Inserts `n` finished records of `queue` in one statement, the newest finished
/// `newest_ago_s` seconds ago and each older one a millisecond before the next.
async fn seed_finished(env: &TestEnv, queue: &str, status: &str, n: i64, newest_ago_s: i64) {
    sqlx::query(
        "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at,
                           created_at, completed_at)
         SELECT gen_random_uuid(), $1, 'NOOP', $2, '{}', 1, t, t, t
         FROM (SELECT now() - make_interval(secs => $3) - g * interval '1 millisecond' AS t
               FROM generate_series(1, $4) g) s",
    )
    .bind(queue)
    .bind(status)
    .bind(newest_ago_s as f64)
    .bind(n)
    .execute(&env.pool)
    .await
    .unwrap();
}

/// Records of `queue` in `status`, from the trigger-kept counters (cheap to poll).
async fn counted(env: &TestEnv, queue: &str, status: JobStatus) -> i64 {
    env.conveyor
        .store()
        .counted_jobs(Some(queue), Some(status), None)
        .await
        .unwrap()
}

#[sqlx::test]
async fn cron_ticks_stay_on_time_while_retention_works_through_a_backlog(pool: PgPool) {
    const BACKLOG: i64 = 200_000;
    const KEEP: u64 = 100;
    let env = TestEnv::with_config(pool, |c| {
        c.queues.get_mut(Q).unwrap().retention = policy(3_600, KEEP, 3_600, KEEP);
    })
    .await;
    seed_finished(&env, Q, "COMPLETED", BACKLOG, 86_400).await;
    let schedule = create(&env, &spec("every-1s", Q, "* * * * * *")).await;

    let stop = CancellationToken::new();
    let running = tokio::spawn(Scheduler::new(env.conveyor.clone()).run(stop.clone()));
    // The window opens once retention has visibly begun.
    wait_for(Duration::from_secs(30), || async {
        let left = counted(&env, Q, JobStatus::Completed).await;
        if left < BACKLOG {
            Ok(())
        } else {
            Err("retention never started".to_string())
        }
    })
    .await;
    let start = Utc::now();
    // A measurement, not a wait: the ticks of six seconds while retention works.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let end = Utc::now();
    let left = counted(&env, Q, JobStatus::Completed).await;
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(5), running).await;

    let window = within(&ticks(&env, schedule.id).await, start, end);
    assert!(
        (5..=7).contains(&window.len()),
        "{} ticks in 6 s while retention ran: {window:?}",
        window.len()
    );
    assert_contiguous(&window, Duration::from_secs(1));
    assert_on_time(&window, TICK_TOLERANCE_MS);
    assert!(
        left > KEEP as i64,
        "retention was still at work when the window closed ({left} left)"
    );
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "shutdown stops the cron loop and retention within 5 s"
    );
    // Nothing prunes after shutdown (proves what does not happen: half a second
    // is ten of retention's pauses between batches).
    let after = counted(&env, Q, JobStatus::Completed).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counted(&env, Q, JobStatus::Completed).await, after);
}

/// Inserts `n` finished records of `queue` in three-way ties of finish time: the
/// k-th group finished `k * 120 + 60` seconds ago (never within a minute of a whole
/// hour, so no record sits on an age cutoff of the test).
async fn seed_tied(env: &TestEnv, queue: &str, status: &str, n: i64) {
    sqlx::query(
        "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at,
                           created_at, completed_at)
         SELECT gen_random_uuid(), $1, 'NOOP', $2, '{}', 1, t, t, t
         FROM (SELECT now() - make_interval(secs => (g / 3) * 120 + 60) AS t
               FROM generate_series(1, $3) g) s",
    )
    .bind(queue)
    .bind(status)
    .bind(n)
    .execute(&env.pool)
    .await
    .unwrap();
}

async fn ids(env: &TestEnv) -> std::collections::BTreeSet<Uuid> {
    sqlx::query_scalar("SELECT id FROM jobs")
        .fetch_all(&env.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn count(env: &TestEnv, queue: &str, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE queue_name = $1 AND status = $2")
        .bind(queue)
        .bind(status)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn retention_keeps_exactly_the_newest_and_the_young_per_queue_and_state(pool: PgPool) {
    const HOUR: u64 = 3_600;
    let env = TestEnv::with_config(pool, |c| {
        let mut set = |q: &str, r| c.queues.get_mut(q).unwrap().retention = r;
        // The keep floor bites (more old records than young ones below it) / age alone.
        set(Q, policy(HOUR, 150, 2 * HOUR, 0));
        // Age bites before the floor / the floor is above every record.
        set("book_data", policy(HOUR, 10, HOUR, 1_000));
        // Nothing is old enough / the floor falls inside a tie of finish times.
        set("author_data", policy(10 * 365 * 24 * HOUR, 5, HOUR, 200));
    })
    .await;
    // More than two batches in one queue and state, batch edges inside ties.
    seed_tied(&env, Q, "COMPLETED", 2_600).await;
    seed_tied(&env, Q, "FAILED", 400).await;
    for q in ["book_data", "author_data"] {
        seed_tied(&env, q, "COMPLETED", 400).await;
        seed_tied(&env, q, "FAILED", 400).await;
    }
    // Never pruned: states that are not COMPLETED or FAILED, a queue without
    // configuration, finished records without a finish time (written by hand).
    sqlx::query(
        "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at,
                           created_at, completed_at)
         SELECT gen_random_uuid(), q, 'NOOP', s, '{}', 1, t, t,
                CASE WHEN s = 'CANCELLED' OR q = 'legacy' THEN t END
         FROM (VALUES ($1, 'CANCELLED'), ($1, 'PENDING'), ($1, 'RUNNING'),
                      ($1, 'COMPLETED'), ($1, 'FAILED'), ('legacy', 'COMPLETED')) v(q, s),
              (SELECT now() - interval '1000 days' AS t) o",
    )
    .bind(Q)
    .execute(&env.pool)
    .await
    .unwrap();
    // One attempt logged per finished job.
    sqlx::query(
        "INSERT INTO job_executions (job_id, job_type, run, attempt, worker_id, status, started_at,
                                     finished_at, duration_ms)
         SELECT id, job_type, 1, 1, 'w', status, completed_at, completed_at, 0 FROM jobs
         WHERE status IN ('COMPLETED', 'FAILED') AND completed_at IS NOT NULL",
    )
    .execute(&env.pool)
    .await
    .unwrap();

    // What the policy names, from its definition: finished before the cutoff and
    // not among the newest `keep` of its queue and state.
    let (mut queues, mut states, mut ages, mut keeps) = (vec![], vec![], vec![], vec![]);
    for (name, q) in &env.config.queues {
        let r = q.retention;
        for (state, age, keep) in [
            ("COMPLETED", r.completed_max_age_s, r.keep_completed),
            ("FAILED", r.failed_max_age_s, r.keep_failed),
        ] {
            queues.push(name.clone());
            states.push(state.to_string());
            ages.push(age as f64);
            keeps.push(keep as i64);
        }
    }
    let doomed: std::collections::BTreeSet<Uuid> = sqlx::query_scalar(
        "SELECT j.id FROM (
             SELECT id, queue_name, status, completed_at,
                    row_number() OVER (PARTITION BY queue_name, status
                                       ORDER BY completed_at DESC NULLS FIRST, id DESC) AS rank
             FROM jobs) j
         JOIN unnest($1::text[], $2::text[], $3::float8[], $4::bigint[]) AS p(q, s, age, keep)
           ON p.q = j.queue_name AND p.s = j.status
         WHERE j.completed_at < now() - make_interval(secs => p.age)
           AND j.rank > p.keep",
    )
    .bind(&queues)
    .bind(&states)
    .bind(&ages)
    .bind(&keeps)
    .fetch_all(&env.pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let before = ids(&env).await;

    let deleted = Scheduler::new(env.conveyor.clone()).prune().await.unwrap();

    let after = ids(&env).await;
    let expected: std::collections::BTreeSet<Uuid> = before.difference(&doomed).copied().collect();
    assert_eq!(deleted as usize, doomed.len());
    assert_eq!(
        after, expected,
        "exactly the records the policy names are gone"
    );
    // The figures the inserted records imply: 89 records per 400 are younger than an hour,
    // 179 younger than two; a record without a finish time stays and sorts newest
    // (one of the 150 kept).
    assert_eq!(count(&env, Q, "COMPLETED").await, 150);
    assert_eq!(count(&env, Q, "FAILED").await, 179 + 1);
    assert_eq!(count(&env, "book_data", "COMPLETED").await, 89);
    assert_eq!(count(&env, "book_data", "FAILED").await, 400);
    assert_eq!(count(&env, "author_data", "COMPLETED").await, 400);
    assert_eq!(count(&env, "author_data", "FAILED").await, 200);
    // Attempts went with their jobs; the counters follow the deletions.
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_executions e WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.job_id)",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM job_executions")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let dated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE status IN ('COMPLETED', 'FAILED') AND completed_at IS NOT NULL",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(attempts, dated);
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT queue_name, status, count(*) FROM jobs GROUP BY 1, 2")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    for (queue, status, n) in rows {
        let status: JobStatus = status.parse().unwrap();
        assert_eq!(counted(&env, &queue, status).await, n, "{queue} {status:?}");
    }
    // A second pass (or another scheduler) finds nothing more.
    assert_eq!(
        Scheduler::new(env.conveyor.clone()).prune().await.unwrap(),
        0
    );
}

/// Every node of an `EXPLAIN (FORMAT JSON)` plan.
fn nodes(plan: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    let mut stack = vec![&plan[0]["Plan"]];
    while let Some(node) = stack.pop() {
        out.push(node);
        if let Some(children) = node["Plans"].as_array() {
            stack.extend(children);
        }
    }
    out
}

#[sqlx::test]
async fn retention_reads_through_its_index_without_sorting(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    seed_finished(&env, Q, "COMPLETED", 50_000, 0).await;
    seed_finished(&env, Q, "FAILED", 5_000, 0).await;
    seed_finished(&env, "book_data", "COMPLETED", 5_000, 0).await;
    sqlx::query("ANALYZE jobs")
        .execute(&env.pool)
        .await
        .unwrap();
    for generic in [false, true] {
        for status in [JobStatus::Completed, JobStatus::Failed] {
            let plans = env
                .conveyor
                .store()
                .explain_prune(Q, status, generic)
                .await
                .unwrap();
            assert_eq!(plans.len(), 2);
            for plan in &plans {
                let all = nodes(plan);
                let kinds: Vec<&str> = all.iter().filter_map(|n| n["Node Type"].as_str()).collect();
                assert!(
                    !kinds.contains(&"Sort"),
                    "generic {generic}, {status:?}: {kinds:?}\n{plan:#}"
                );
                // A partition that holds no record (a day to come) may be read
                // whole: there is nothing in it.
                for node in all.iter().filter(|n| n["Node Type"] == "Seq Scan") {
                    let relation = node["Relation Name"].as_str().unwrap();
                    let holds: bool =
                        sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {relation})"))
                            .fetch_one(&env.pool)
                            .await
                            .unwrap();
                    assert!(
                        !holds,
                        "generic {generic}, {status:?}: a scan of all of {relation}\n{plan:#}"
                    );
                }
                // Each partition's copy of jobs_finished_idx is named after the
                // partition and the index's columns.
                assert!(
                    all.iter().any(|n| n["Index Name"]
                        .as_str()
                        .is_some_and(|i| i.ends_with("_queue_name_status_completed_at_id_idx"))),
                    "generic {generic}, {status:?}: no scan of jobs_finished_idx\n{plan:#}"
                );
            }
        }
    }
}

#[sqlx::test]
async fn retention_removes_exactly_what_its_policy_names(pool: PgPool) {
    let env = TestEnv::with_config(pool, |c| {
        c.queues.get_mut(Q).unwrap().retention = policy(3_600, 2, 7_200, 0);
        c.queues.get_mut("book_data").unwrap().retention = policy(3_600, 100, 3_600, 0);
    })
    .await;
    let h = 3_600;
    // diagnostics COMPLETED: older than 1 h and not among the newest 2 go.
    let c1 = env.insert_job(Q, "COMPLETED", 5 * h).await;
    let c2 = env.insert_job(Q, "COMPLETED", 4 * h).await;
    let c3 = env.insert_job(Q, "COMPLETED", 3 * h).await;
    let c4 = env.insert_job(Q, "COMPLETED", 2 * h).await; // old, but among the newest 2
    let c5 = env.insert_job(Q, "COMPLETED", 600).await; // young
                                                        // diagnostics FAILED: older than 2 h go (no floor).
    let f1 = env.insert_job(Q, "FAILED", 3 * h).await;
    let f2 = env.insert_job(Q, "FAILED", h).await;
    // Other states are never pruned, however old.
    let cancelled = env.insert_job(Q, "CANCELLED", 100 * h).await;
    let pending = env.insert_job(Q, "PENDING", 100 * h).await;
    let running = env.insert_job(Q, "RUNNING", 100 * h).await;
    // book_data keeps its newest 100 completed; its old FAILED goes.
    let b1 = env.insert_job("book_data", "COMPLETED", 100 * h).await;
    let b2 = env.insert_job("book_data", "FAILED", 100 * h).await;
    // A queue without configuration is left alone.
    let legacy = env.insert_job("legacy", "COMPLETED", 1_000 * h).await;

    let deleted = Scheduler::new(env.conveyor.clone()).prune().await.unwrap();
    assert_eq!(deleted, 5);
    let left = ids(&env).await;
    let expected: std::collections::BTreeSet<Uuid> =
        [c4, c5, f2, cancelled, pending, running, b1, legacy]
            .into_iter()
            .collect();
    assert_eq!(left, expected);
    for gone in [c1, c2, c3, f1, b2] {
        assert!(!left.contains(&gone));
    }
    // Idempotent: a second pass (or another scheduler) deletes nothing more.
    assert_eq!(
        Scheduler::new(env.conveyor.clone()).prune().await.unwrap(),
        0
    );
}

#[sqlx::test]
async fn retention_deletes_in_batches(pool: PgPool) {
    let env = TestEnv::with_config(pool, |c| {
        c.queues.get_mut(Q).unwrap().retention = policy(60, 10, 60, 0);
    })
    .await;
    sqlx::query(
        "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at, completed_at)
         SELECT gen_random_uuid(), $1, 'NOOP', 'COMPLETED', '{}', 1, now(),
                now() - make_interval(secs => 3600 + g)
         FROM generate_series(1, 2500) g",
    )
    .bind(Q)
    .execute(&env.pool)
    .await
    .unwrap();
    let deleted = env
        .conveyor
        .store()
        .prune_finished(Q, JobStatus::Completed, 60, 10)
        .await
        .unwrap();
    assert_eq!(deleted, 2490);
    let newest: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE completed_at > now() - make_interval(secs => 3611)",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(newest, 10, "the newest 10 are kept");
}

/// Inserts `n` records of `queue` in `status` finished `days_ago` days ago
/// (within a minute of each other), with idempotency keys (taken through the
/// keys table, as an enqueue does) and, for FAILED ones, their attempt logged.
async fn seed_day(env: &TestEnv, queue: &str, status: &str, n: i64, days_ago: i64) -> Vec<Uuid> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "WITH keyed AS (
            INSERT INTO job_idempotency_keys (queue_name, idempotency_key, job_id)
            SELECT $1, $2 || '-' || $4 || '-' || g, gen_random_uuid() FROM generate_series(1, $3) g
            RETURNING idempotency_key, job_id
         )
         INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at,
                           created_at, completed_at, idempotency_key)
         SELECT job_id, $1, 'NOOP', $2, '{}', 1, t, t, t, idempotency_key
         FROM keyed, (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                             - make_interval(days => $4::int) + interval '12 hours' + random() * interval '1 minute' AS t) s
         RETURNING id",
    )
    .bind(queue)
    .bind(status)
    .bind(n)
    .bind(days_ago)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO job_executions (job_id, job_type, run, attempt, worker_id, status, started_at, finished_at,
                                     duration_ms)
         SELECT id, job_type, 1, 1, 'w', 'FAILED', completed_at, completed_at, 0 FROM jobs
         WHERE id = ANY($1) AND status = 'FAILED'",
    )
    .bind(&ids)
    .execute(&env.pool)
    .await
    .unwrap();
    ids
}

#[sqlx::test]
async fn a_day_past_the_retention_age_goes_with_its_partition_and_what_is_not_due_stays(
    pool: PgPool,
) {
    const DAY: u64 = 86_400;
    let env = TestEnv::with_config(pool, |c| {
        c.queues.get_mut(Q).unwrap().retention = policy(2 * DAY, 0, 30 * DAY, 0);
        // Completed records of book_data are kept a week.
        c.queues.get_mut("book_data").unwrap().retention = policy(7 * DAY, 0, 30 * DAY, 0);
    })
    .await;
    let store = env.conveyor.store();
    let today = Utc::now().date_naive();
    store
        .add_history_partitions(today - chrono::Duration::days(10), today)
        .await
        .unwrap();
    // Five days ago: due (diagnostics COMPLETED), and not due (diagnostics FAILED,
    // younger than 30 days; book_data COMPLETED, younger than a week; CANCELLED
    // and a queue without configuration, never pruned).
    let due = seed_day(&env, Q, "COMPLETED", 3_000, 5).await;
    let mut kept = seed_day(&env, Q, "FAILED", 20, 5).await;
    kept.extend(seed_day(&env, "book_data", "COMPLETED", 30, 5).await);
    kept.extend(seed_day(&env, Q, "CANCELLED", 5, 5).await);
    kept.extend(seed_day(&env, "legacy", "COMPLETED", 5, 5).await);
    // Yesterday's day is not over two days ago yet: its partition stays whole.
    let young = seed_day(&env, Q, "COMPLETED", 50, 1).await;
    let five_days_ago = format!(
        "jobs_history_p{}",
        (today - chrono::Duration::days(5)).format("%Y%m%d")
    );
    let partitions = |env: &TestEnv| {
        let store = env.conveyor.store().clone();
        async move {
            store
                .history_partitions()
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
        }
    };
    assert!(partitions(&env).await.contains(&five_days_ago));

    let deleted = Scheduler::new(env.conveyor.clone()).prune().await.unwrap();

    assert_eq!(deleted, 3_000);
    assert!(!partitions(&env).await.contains(&five_days_ago));
    let left = ids(&env).await;
    assert!(due.iter().all(|id| !left.contains(id)));
    assert!(kept.iter().chain(&young).all(|id| left.contains(id)));
    let in_default: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE id = ANY($1) AND tableoid = 'jobs_history_default'::regclass",
    )
    .bind(&kept)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(in_default, kept.len() as i64);
    // The counters, the keys and the attempt log lost exactly the dropped records.
    for (queue, status) in [
        (Q, JobStatus::Completed),
        (Q, JobStatus::Failed),
        (Q, JobStatus::Cancelled),
        ("book_data", JobStatus::Completed),
        ("legacy", JobStatus::Completed),
    ] {
        assert_eq!(
            counted(&env, queue, status).await,
            count(&env, queue, status.as_str()).await,
            "{queue} {status:?}"
        );
    }
    let keys: Vec<Uuid> = sqlx::query_scalar("SELECT job_id FROM job_idempotency_keys")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(keys.len(), kept.len() + young.len());
    assert!(keys.iter().all(|id| left.contains(id)));
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM job_executions")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(logged, 20, "the kept failures' attempts stay logged");
    // A second pass finds nothing more due.
    assert_eq!(
        Scheduler::new(env.conveyor.clone()).prune().await.unwrap(),
        0
    );
}
