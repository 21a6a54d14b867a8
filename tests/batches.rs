//! Batch job types end to end: the real `conveyor-worker` runs a batch parent and
//! its children (language-model children against a fake provider) and the parent
//! completes with the tally of its children.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use conveyor_tests::fakes::fake_chat_server;
use conveyor_tests::{wait_for, TestEnv, WorkerProcess};
use queue_core::store::{CancelOutcome, JobFilter, NewBook, NewChapter};
use queue_core::{JobStatus, NewJob};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(120);

/// A worker on `queues` whose language-model calls go to `url`, with no rate
/// limit on the domain queues or the provider (the test is about batches).
fn worker(env: &TestEnv, queues: &str, url: &str) -> WorkerProcess {
    env.spawn_worker(
        &["--queues", queues, "--concurrency", "20"],
        &[
            ("CONVEYOR__PROVIDERS__DEEPSEEK__BASE_URL", url),
            (
                "CONVEYOR__PROVIDERS__DEEPSEEK__REQUESTS_PER_MINUTE",
                "1000000",
            ),
            (
                "CONVEYOR__PROVIDERS__DEEPSEEK__TOKENS_PER_MINUTE",
                "1000000000",
            ),
            ("CONVEYOR__PROVIDERS__DEEPSEEK__CONCURRENCY", "20"),
            ("CONVEYOR__QUEUES__AUTHOR_DATA__RATE_LIMIT__MAX", "0"),
            ("CONVEYOR__QUEUES__BOOK_DATA__RATE_LIMIT__MAX", "0"),
            ("DEEPSEEK_API_KEY", "test-deepseek"),
        ],
    )
}

/// `n` authors, inserted in one statement.
async fn authors(env: &TestEnv, n: i32) -> Vec<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO authors (id, name)
         SELECT gen_random_uuid(), 'Author ' || i FROM generate_series(1, $1) AS i
         RETURNING id",
    )
    .bind(n)
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

/// `n` books with one short chapter each.
async fn books(env: &TestEnv, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let book = NewBook {
            identifier: format!("urn:test:book-{i}"),
            title: format!("Book {i}"),
            author: None,
            language: Some("en".into()),
            source_path: None,
            chapters: vec![NewChapter::new(None, "A short chapter. ".repeat(20))],
        };
        ids.push(
            env.conveyor
                .store()
                .upsert_book(&book)
                .await
                .unwrap()
                .book_id,
        );
    }
    ids
}

async fn enqueue(env: &TestEnv, job_type: &str, payload: Value) -> Uuid {
    env.enqueue(NewJob::new("batch_orchestrator", job_type, payload))
        .await
}

async fn children(env: &TestEnv, parent: Uuid, status: Option<JobStatus>) -> i64 {
    let filter = JobFilter {
        parent_id: Some(parent),
        status,
        ..Default::default()
    };
    env.conveyor.store().count_jobs(&filter).await.unwrap()
}

fn tally(total: i64, completed: i64, failed: i64, cancelled: i64) -> Option<Value> {
    Some(json!({"total": total, "completed": completed, "failed": failed, "cancelled": cancelled}))
}

#[sqlx::test]
async fn a_batch_of_200_children_completes_with_their_tally(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let (url, hits) = fake_chat_server().await;
    let ids = books(&env, 200).await;
    let _worker = worker(&env, "batch_orchestrator,book_data", &url);

    let parent = enqueue(&env, "BATCH_GENERATE_CEFR", json!({ "bookIds": ids })).await;
    let done = env.wait_status(parent, JobStatus::Completed, WAIT).await;

    assert_eq!(done.result, tally(200, 200, 0, 0));
    assert_eq!(done.progress, 100);
    assert_eq!(
        children(&env, parent, Some(JobStatus::Completed)).await,
        200
    );
    assert_eq!(hits.load(Ordering::SeqCst), 200, "one request per child");
    for id in ids {
        let book = env.conveyor.store().get_book(id).await.unwrap().unwrap();
        assert_eq!(book.cefr_level.as_deref(), Some("B2"), "book {id}");
    }
    // The parent's one attempt created the children and held no slot after it.
    let executions = env.executions(parent).await;
    assert_eq!(executions.len(), 1, "{executions:?}");
}

#[sqlx::test]
async fn a_batch_reports_the_children_that_failed(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let (url, _) = fake_chat_server().await;
    let mut ids = authors(&env, 3).await;
    let missing = [Uuid::now_v7(), Uuid::now_v7()];
    ids.extend(missing);
    let _worker = worker(&env, "batch_orchestrator,author_data", &url);

    let parent = enqueue(&env, "BATCH_ENRICH_AUTHORS", json!({ "authorIds": ids })).await;
    let done = env.wait_status(parent, JobStatus::Completed, WAIT).await;

    assert_eq!(done.result, tally(5, 3, 2, 0));
    let filter = JobFilter {
        parent_id: Some(parent),
        status: Some(JobStatus::Failed),
        ..Default::default()
    };
    let failed = env
        .conveyor
        .store()
        .list_jobs(&filter, 10, 0)
        .await
        .unwrap();
    assert_eq!(failed.len(), 2);
    for child in failed {
        let error = child.error.unwrap_or_default();
        assert!(
            missing.iter().any(|id| error.contains(&id.to_string())),
            "names the missing author: {error}"
        );
    }
}

#[sqlx::test]
async fn cancelling_a_running_batch_cancels_its_waiting_children(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let (url, hits) = fake_chat_server().await;
    let ids = books(&env, 50).await;
    // Its children's queue is paused: they wait while the parent runs.
    env.conveyor.set_paused("book_data", true).await.unwrap();
    let _worker = worker(&env, "batch_orchestrator,book_data", &url);

    let parent = enqueue(&env, "BATCH_GENERATE_CEFR", json!({ "bookIds": ids })).await;
    wait_for(WAIT, || async {
        let made = children(&env, parent, None).await;
        if made >= 50 {
            Ok(())
        } else {
            Err(format!("the parent created {made} of its 50 children"))
        }
    })
    .await;
    let running = env.job(parent).await;
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.result, tally(50, 0, 0, 0));

    let outcome = env.conveyor.store().cancel_or_delete(parent).await.unwrap();
    assert_eq!(outcome, CancelOutcome::Requested);
    let cancelled = env.wait_status(parent, JobStatus::Cancelled, WAIT).await;
    assert_eq!(cancelled.result, tally(50, 0, 0, 50));
    assert_eq!(children(&env, parent, Some(JobStatus::Cancelled)).await, 50);

    // Resuming the queue runs none of them (proves what does not happen: half a
    // second is many times what a worker takes to claim a ready job).
    env.conveyor.set_paused("book_data", false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert_eq!(children(&env, parent, Some(JobStatus::Cancelled)).await, 50);
}

#[sqlx::test]
async fn a_batch_of_ten_thousand_children_completes(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let (url, hits) = fake_chat_server().await;
    let ids = authors(&env, 10_000).await;
    let _worker = worker(&env, "batch_orchestrator,author_data", &url);

    let started = Instant::now();
    let parent = enqueue(&env, "BATCH_ENRICH_AUTHORS", json!({ "authorIds": ids })).await;
    let done = env
        .wait_status(parent, JobStatus::Completed, Duration::from_secs(600))
        .await;
    // Printed for the README's figure (run with --no-capture); not asserted.
    eprintln!(
        "10 000-child batch: enqueue to parent COMPLETED in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(done.result, tally(10_000, 10_000, 0, 0));
    assert_eq!(hits.load(Ordering::SeqCst), 10_000);
    let personas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM authors WHERE persona IS NOT NULL")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(personas, 10_000);
}
