//! Dead letters follow PostgreSQL's truth: a FAILED job gets exactly one entry in
//! its queue's dead-letter stream per run, even when the first attempt to add it
//! failed or was sent twice.

use std::time::Duration;

use chrono::Utc;
use conveyor_tests::TestEnv;
use queue_core::broker::Ack;
use queue_core::job::NewJob;
use queue_core::store::{FinalState, FinishedAttempt};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";

async fn stream_len(env: &TestEnv) -> usize {
    env.dead_letters(Q).await.len()
}

fn dead_letter(error: &str) -> Ack {
    Ack::DeadLetter {
        job_type: "FAIL".into(),
        error: error.into(),
        run: 1,
        attempts: 1,
        failed_at: Utc::now(),
    }
}

#[sqlx::test]
async fn a_dead_letter_is_added_once_when_its_pipeline_is_sent_again(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let broker = env.conveyor.broker();
    // Redis forgot the scripts (a restart, SCRIPT FLUSH): the pipeline fails on its
    // first script call and is sent again whole once they are loaded.
    let mut redis = env.redis().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis)
        .await
        .unwrap();
    let (failed, released) = (Uuid::now_v7(), Uuid::now_v7());
    let acks = vec![
        (Q.to_string(), failed, dead_letter("boom")),
        (
            Q.to_string(),
            released,
            Ack::Release {
                priority: 5,
                delay_ms: 0,
            },
        ),
    ];
    broker.ack(&acks).await.unwrap();
    assert_eq!(stream_len(&env).await, 1);
    // The same dead letter sent again (the reconciler after a lost acknowledgement).
    broker.ack(&acks[..1]).await.unwrap();
    assert_eq!(stream_len(&env).await, 1);
}

#[sqlx::test]
async fn a_failure_whose_dead_letter_never_reached_redis_gets_it_from_the_outbox(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let store = env.conveyor.store();
    let job = NewJob::new(Q, "FAIL", json!({"retryable": false}));
    let id = env.enqueue(job).await;
    let claimed = store
        .claim(&[id], "worker-a", Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    // The completer wrote FAILED, then Redis failed before the dead letter was added.
    let outbox = Uuid::new_v4();
    let failed = FinishedAttempt {
        id,
        run: claimed.runs,
        attempt: claimed.attempts,
        worker_id: "worker-a".into(),
        started_at: claimed.started_at,
        finished_at: Utc::now(),
        state: FinalState::Failed("diagnostic failure".into()),
    };
    store.finish(&[failed], outbox).await.unwrap();
    assert_eq!(stream_len(&env).await, 0);
    // The reconciler's sweep of the outbox adds it.
    store
        .dispatch_missing(env.conveyor.broker(), Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(stream_len(&env).await, 1);
    let (letters, _) = env
        .conveyor
        .broker()
        .dead_letters(Q, None, 10)
        .await
        .unwrap();
    assert_eq!(letters[0].letter.job_id, id);
    assert_eq!(letters[0].letter.error, "diagnostic failure");
    assert_eq!(letters[0].letter.attempts, 1);
}
