//! `GET /api/admin/workers`: a live in-process worker is listed with its identity
//! and capacity until it stops; a real worker killed with SIGKILL leaves the list
//! and its row is pruned (seen through the real `conveyor-api`); unreadable keys
//! and other prefixes are skipped.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode;
use conveyor_tests::http::{time_of, TestApi};
use conveyor_tests::{wait_for, TestEnv};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

const Q: &str = "diagnostics";
const LONG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------
// GET /api/admin/workers
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn workers_lists_a_live_worker_until_it_stops(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let none = api.get("/api/admin/workers").await;
    assert_eq!(none.status, StatusCode::OK, "{none:?}");
    assert_eq!(none.body, json!([]));

    let worker = env.worker(&[Q], Some(3));
    let listed = wait_for(LONG, || async {
        let reply = api.get("/api/admin/workers").await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        match reply.body.as_array() {
            Some(a) if !a.is_empty() => Ok(reply.body),
            _ => Err("the worker never showed up".to_string()),
        }
    })
    .await;
    let workers = listed.as_array().unwrap();
    assert_eq!(workers.len(), 1, "{listed}");
    let w = &workers[0];
    let keys: BTreeSet<&str> = w.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "host",
            "pid",
            "queues",
            "concurrency",
            "running",
            "startedAt",
            "lastHeartbeat"
        ])
    );
    assert_eq!(w["id"], worker.id);
    assert_eq!(w["pid"], std::process::id());
    assert!(w["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert_eq!(w["queues"], json!([Q]));
    assert_eq!(w["concurrency"], 3);
    assert_eq!(w["running"], 0);
    assert!(time_of(&w["startedAt"]) <= time_of(&w["lastHeartbeat"]));

    worker.stop().await;
    let gone = api.get("/api/admin/workers").await;
    assert_eq!(gone.body, json!([]));
}

#[sqlx::test]
async fn a_worker_killed_with_sigkill_leaves_the_list_and_its_row_is_pruned(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let short = [
        ("CONVEYOR__WORKER__LEASE_MS", "1000"),
        ("CONVEYOR__WORKER__HEARTBEAT_MS", "200"),
    ];
    let api = env.spawn_api(&short).await;
    let worker = env.spawn_worker(&["--queues", Q], &short);
    let listed = |body: &Value| {
        body.as_array()
            .is_some_and(|a| a.iter().any(|w| w["pid"] == worker.pid))
    };
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM workers WHERE pid = $1")
            .bind(worker.pid as i32)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    wait_for(LONG, || async {
        let (status, body) = api.call(Method::GET, "/api/admin/workers", None).await;
        assert_eq!(status, 200, "{body}");
        if listed(&body) && rows().await == 1 {
            Ok(())
        } else {
            Err(format!("the worker never showed up: {body}"))
        }
    })
    .await;

    env.signal(&worker, "KILL");
    env.wait_exit(&worker, LONG).await;
    wait_for(LONG, || async {
        let (status, body) = api.call(Method::GET, "/api/admin/workers", None).await;
        assert_eq!(status, 200, "{body}");
        let left = rows().await;
        if !listed(&body) && left == 0 {
            Ok(())
        } else {
            Err(format!(
                "the killed worker is still listed ({}) or has {left} row(s)",
                listed(&body)
            ))
        }
    })
    .await;
}

#[sqlx::test]
async fn workers_skips_unreadable_keys_and_other_prefixes(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let mut redis = env.redis().await;
    let info = json!({
        "id": "host-1:42:0000beef", "host": "host-1", "pid": 42, "queues": ["book_data", "diagnostics"],
        "concurrency": 5, "running": 2, "startedAt": "2026-01-01T00:00:00Z",
        "lastHeartbeat": "2026-01-01T00:00:10Z"
    });
    let other_prefix = format!("{}x:worker:someone-else", env.prefix);
    for (k, v) in [
        (
            format!("{}:worker:junk", env.prefix),
            "not json".to_string(),
        ),
        (
            format!("{}:worker:host-1:42:0000beef", env.prefix),
            info.to_string(),
        ),
        (other_prefix.clone(), info.to_string()),
    ] {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(v)
            .arg("PX")
            .arg(60_000)
            .query_async(&mut redis)
            .await
            .unwrap();
    }

    let reply = api.get("/api/admin/workers").await;
    let _: i64 = redis::cmd("DEL")
        .arg(&other_prefix)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!([info]));

    let bad = api.get("/api/admin/workers?queue=diagnostics").await;
    bad.assert_error_naming(StatusCode::BAD_REQUEST, "invalid_query", &["queue"]);
}
