//! `conveyorctl` end to end: each test spawns the real `conveyor-api` on its own
//! database and Redis prefix, runs the built `conveyorctl` binary against it (URL
//! and token from the environment, as a script would) and checks its stdout,
//! stderr and exit code, and where it matters the records it changed.

use std::time::Duration;

use conveyor_tests::ctl::run_ctl;
use conveyor_tests::{wait_for, TestEnv};
use queue_core::job::{JobStatus, NewJob};
use queue_core::store::{NewBook, NewChapter, NewQuote};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";
const LONG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

async fn enqueue(env: &TestEnv, job_type: &str, payload: Value) -> Uuid {
    env.enqueue(NewJob::new(Q, job_type, payload)).await
}

/// A job that failed for good (a worker ran it once), with its dead letter.
async fn failed_job(env: &TestEnv) -> Uuid {
    let worker = env.worker(&[Q], None);
    let id = enqueue(env, "FAIL", json!({"retryable": false, "message": "nope"})).await;
    env.wait_status(id, JobStatus::Failed, LONG).await;
    worker.stop().await;
    id
}

/// The value after `key:` on a `key: value` line of person output.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        line.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

// ---------------------------------------------------------------------------------
// Global behaviour: help, exit codes, auth, --json
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn help_documents_exit_codes_and_never_shows_the_token(pool: PgPool) {
    let _env = TestEnv::new(pool).await;
    let ran = run_ctl(
        "http://127.0.0.1:9",
        Some("s3cret-token-value"),
        &["--help"],
    )
    .await;
    let help = ran.ok();
    assert!(help.contains("Exit codes:"), "{help}");
    for line in [
        "0  success",
        "1  the API refused",
        "2  usage error",
        "3  the API cannot be reached",
        "4  not found",
    ] {
        assert!(help.contains(line), "help lacks `{line}`: {help}");
    }
    assert!(help.contains("CONVEYOR_URL") && help.contains("CONVEYOR_TOKEN"));
    assert!(!help.contains("s3cret-token-value"), "{help}");
}

#[sqlx::test]
async fn usage_errors_exit_2(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    // Missing arguments, an unknown command, a bad number: clap's usage error.
    for args in [
        &["enqueue", Q][..],
        &["frobnicate"][..],
        &["list", "--limit", "many"][..],
        &[
            "enqueue",
            Q,
            "NOOP",
            "--payload",
            "{}",
            "--payload-file",
            "x.json",
        ][..],
    ] {
        let ran = api.ctl(args).await;
        assert_eq!(ran.code, 2, "{args:?}: {ran:#?}");
        assert!(ran.stdout.is_empty(), "{ran:#?}");
    }
    // A payload that is not JSON, or a file that cannot be read: also 2, and
    // nothing was sent.
    let ran = api
        .ctl(&["enqueue", Q, "NOOP", "--payload", "{not json"])
        .await;
    assert_eq!(ran.code, 2, "{ran:#?}");
    assert!(ran.stderr.contains("not valid JSON"), "{ran:#?}");
    let ran = api
        .ctl(&[
            "enqueue",
            Q,
            "NOOP",
            "--payload-file",
            "/nonexistent/p.json",
        ])
        .await;
    assert_eq!(ran.code, 2, "{ran:#?}");
    assert!(ran.stderr.contains("/nonexistent/p.json"), "{ran:#?}");
    assert_eq!(env.count(JobStatus::Pending).await, 0);
}

#[sqlx::test]
async fn a_wrong_token_exits_1_with_the_api_message_and_is_never_printed(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let wrong = "wrong-token-9f8e7d";
    let ran = run_ctl(&api.url, Some(wrong), &["queues"]).await;
    ran.failed(1, "unauthorized: invalid token");
    assert!(!ran.stderr.contains(wrong), "{ran:#?}");

    // No token at all: the API's own message for that.
    let ran = run_ctl(&api.url, None, &["list"]).await;
    ran.failed(1, "unauthorized: missing bearer token");

    // --token on the command line beats the environment.
    let ran = run_ctl(&api.url, Some(wrong), &["--token", &api.token, "queues"]).await;
    ran.ok();
}

#[sqlx::test]
async fn an_unreachable_api_exits_3(pool: PgPool) {
    let _env = TestEnv::new(pool).await;
    let port = conveyor_tests::services::free_port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        &["queues"][..],
        &["status"][..],
        &["get", &Uuid::new_v4().to_string()][..],
    ] {
        let ran = run_ctl(&url, Some("admin-token"), args).await;
        ran.failed(3, "cannot reach the API");
        assert!(
            ran.stderr.contains(&format!("127.0.0.1:{port}")),
            "{ran:#?}"
        );
        assert!(!ran.stderr.contains("admin-token"), "{ran:#?}");
    }
}

#[sqlx::test]
async fn an_unknown_id_exits_4(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let id = Uuid::new_v4().to_string();
    for args in [&["get", &id][..], &["cancel", &id][..], &["retry", &id][..]] {
        let ran = api.ctl(args).await;
        ran.failed(4, "not_found:");
        assert!(ran.stderr.contains(&id), "{args:?}: {ran:#?}");
    }
    // A malformed id is the API refusing the input (400), not a missing job.
    let ran = api.ctl(&["get", "not-a-uuid"]).await;
    ran.failed(1, "invalid_field: id:");
}

#[sqlx::test]
async fn json_output_parses_for_every_reading_command(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let id = enqueue(&env, "NOOP", json!({"n": 1})).await.to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["get", &id],
        vec!["list"],
        vec!["queues"],
        vec!["stats", Q],
        vec!["dlq", "list", Q],
        vec!["workers"],
        vec!["status"],
        vec!["authors"],
        vec!["books", "list"],
        vec!["quotes", "list"],
    ];
    for args in cases {
        // --json is global: before or after the command.
        let mut after = args.clone();
        after.push("--json");
        let mut before = vec!["--json"];
        before.extend(args.iter().copied());
        for argv in [after, before] {
            let value = api.ctl(&argv).await.json();
            assert!(value.is_object() || value.is_array(), "{argv:?}: {value}");
        }
    }
    let job = api.ctl(&["get", &id, "--json"]).await.json();
    assert_eq!(job["id"], id);
    assert_eq!(job["payload"], json!({"n": 1}));
    assert!(job["executions"].is_array());
}

// ---------------------------------------------------------------------------------
// One test per command
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn enqueue_creates_the_job_with_its_options(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let ran = api
        .ctl(&[
            "enqueue",
            Q,
            "ECHO",
            "--payload",
            r#"{"hello": "world"}"#,
            "--priority",
            "high",
            "--max-attempts",
            "2",
        ])
        .await;
    let text = ran.ok();
    let id: Uuid = field(text, "id").expect("id line").parse().expect("uuid");
    assert_eq!(field(text, "queueName"), Some(Q));
    assert_eq!(field(text, "jobType"), Some("ECHO"));
    assert_eq!(field(text, "status"), Some("PENDING"));
    let job = env.job(id).await;
    assert_eq!(job.payload, json!({"hello": "world"}));
    assert_eq!(job.priority, 10);
    assert_eq!(job.max_attempts, 2);

    // --delay-ms makes it DELAYED; a numeric priority is sent as a number.
    let job = api
        .ctl(&[
            "enqueue",
            Q,
            "NOOP",
            "--delay-ms",
            "600000",
            "--priority",
            "-3",
            "--json",
        ])
        .await
        .json();
    assert_eq!(job["status"], "DELAYED");
    assert_eq!(job["priority"], -3);
    assert_eq!(job["payload"], json!({}));

    // The same idempotency key twice: one job; the second run says so on stderr.
    let args = ["enqueue", Q, "NOOP", "--idempotency-key", "k-1", "--json"];
    let first = api.ctl(&args).await.json();
    let again = api.ctl(&args[..args.len() - 1]).await;
    assert_eq!(again.code, 0, "{again:#?}");
    assert_eq!(field(&again.stdout, "id"), first["id"].as_str());
    assert!(again.stderr.contains("already exists"), "{again:#?}");

    // Refused input exits 1 with the API's code and message.
    let ran = api.ctl(&["enqueue", "no_such_queue", "NOOP"]).await;
    ran.failed(1, "unknown_queue:");
    assert!(ran.stderr.contains("no_such_queue"), "{ran:#?}");
    let ran = api.ctl(&["enqueue", Q, "NOPE"]).await;
    ran.failed(1, "unknown_job_type:");
}

#[sqlx::test]
async fn enqueue_reads_the_payload_from_a_file(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let path = std::env::temp_dir().join(format!("conveyorctl-{}.json", Uuid::new_v4()));
    let payload = json!({"items": [1, 2, 3], "nested": {"ok": true}, "text": "héllo"});
    std::fs::write(&path, serde_json::to_string_pretty(&payload).unwrap()).unwrap();
    let ran = api
        .ctl(&[
            "enqueue",
            Q,
            "ECHO",
            "--payload-file",
            path.to_str().unwrap(),
            "--json",
        ])
        .await;
    std::fs::remove_file(&path).ok();
    let job = ran.json();
    assert_eq!(job["payload"], payload);
    let id: Uuid = job["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(env.job(id).await.payload, payload);
}

#[sqlx::test]
async fn get_shows_the_job_and_its_attempts(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let id = failed_job(&env).await;
    let ran = api.ctl(&["get", &id.to_string()]).await;
    let text = ran.ok();
    assert_eq!(field(text, "id"), Some(id.to_string().as_str()));
    assert_eq!(field(text, "status"), Some("FAILED"));
    assert_eq!(field(text, "error"), Some("nope"));
    assert_eq!(field(text, "attempts"), Some("1"));
    assert!(text.contains("executions:"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("ATTEMPT") && l.contains("WORKER")),
        "{text}"
    );
}

#[sqlx::test]
async fn list_prints_a_table_and_filters(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(enqueue(&env, "NOOP", json!({})).await);
    }
    enqueue(&env, "ECHO", json!({})).await;

    let ran = api
        .ctl(&[
            "list",
            "--queue",
            Q,
            "--status",
            "PENDING",
            "--job-type",
            "NOOP",
            "--limit",
            "2",
        ])
        .await;
    let text = ran.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "QUEUE", "TYPE", "STATUS", "ATTEMPTS", "CREATED", "AT"],
        "{text}"
    );
    // Newest first, two per page, columns aligned under the header.
    assert!(lines[1].starts_with(&ids[2].to_string()), "{text}");
    assert!(lines[2].starts_with(&ids[1].to_string()), "{text}");
    let status_col = lines[0].find("STATUS").unwrap();
    assert_eq!(&lines[1][status_col..status_col + 7], "PENDING", "{text}");
    assert!(lines[1].contains(" NOOP "), "{text}");
    assert!(lines[3].contains("page 1 of 2, 3 jobs"), "{text}");

    let page = api
        .ctl(&[
            "list",
            "--job-type",
            "NOOP",
            "--page",
            "2",
            "--limit",
            "2",
            "--json",
        ])
        .await
        .json();
    assert_eq!(page["total"], 3);
    assert_eq!(page["page"], 2);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], ids[0].to_string());

    // Invalid filters are the API's 400s.
    api.ctl(&["list", "--status", "SLEEPING"])
        .await
        .failed(1, "invalid_field: status:");
    api.ctl(&["list", "--limit", "101"])
        .await
        .failed(1, "invalid_field: limit:");
}

#[sqlx::test]
async fn retry_puts_a_failed_job_back(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let id = failed_job(&env).await;
    let text = api.ctl(&["retry", &id.to_string()]).await.ok().to_string();
    assert_eq!(field(&text, "status"), Some("PENDING"), "{text}");
    assert_eq!(field(&text, "attempts"), Some("0"), "{text}");
    assert_eq!(env.job(id).await.status, JobStatus::Pending);

    // A PENDING job cannot be retried: 409 → exit 1.
    let ran = api.ctl(&["retry", &id.to_string()]).await;
    ran.failed(1, "conflict:");
}

#[sqlx::test]
async fn cancel_cancels_a_waiting_job_then_deletes_it(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let id = enqueue(&env, "NOOP", json!({})).await;
    let text = api.ctl(&["cancel", &id.to_string()]).await.ok().to_string();
    assert!(text.starts_with(&format!("cancelled job {id}")), "{text}");
    assert_eq!(field(&text, "status"), Some("CANCELLED"), "{text}");
    assert_eq!(env.job(id).await.status, JobStatus::Cancelled);

    // A finished job's record is deleted (204); --json still prints JSON.
    let done = api.ctl(&["cancel", &id.to_string(), "--json"]).await.json();
    assert_eq!(done, json!({"id": id.to_string(), "deleted": true}));
    api.ctl(&["get", &id.to_string()])
        .await
        .failed(4, "not_found:");
}

#[sqlx::test]
async fn queues_lists_every_configured_queue(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    enqueue(&env, "NOOP", json!({})).await;
    let text = api.ctl(&["queues"]).await.ok().to_string();
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "QUEUE",
            "PAUSED",
            "WAITING",
            "ACTIVE",
            "DELAYED",
            "RETRYING",
            "COMPLETED",
            "FAILED",
            "CANCELLED"
        ]
    );
    for queue in env.config.queues.keys() {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(queue.as_str())),
            "{queue} missing: {text}"
        );
    }
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with(Q))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [Q, "false", "1", "0", "0", "0", "0", "0", "0"],
        "{text}"
    );
}

#[sqlx::test]
async fn stats_shows_one_queue(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    enqueue(&env, "NOOP", json!({})).await;
    enqueue(&env, "NOOP", json!({})).await;
    let text = api.ctl(&["stats", Q]).await.ok().to_string();
    assert_eq!(field(&text, "queue"), Some(Q));
    assert_eq!(field(&text, "waiting"), Some("2"));
    assert_eq!(field(&text, "paused"), Some("false"));
    api.ctl(&["stats", "no_such_queue"])
        .await
        .failed(1, "unknown_queue:");
}

#[sqlx::test]
async fn pause_and_resume_a_queue(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let text = api.ctl(&["pause", Q]).await.ok().to_string();
    assert_eq!(field(&text, "queue"), Some(Q));
    assert_eq!(field(&text, "paused"), Some("true"));
    let stats = api.ctl(&["stats", Q, "--json"]).await.json();
    assert_eq!(stats["paused"], true);

    let text = api.ctl(&["resume", Q]).await.ok().to_string();
    assert_eq!(field(&text, "paused"), Some("false"));
    let stats = api.ctl(&["stats", Q, "--json"]).await.json();
    assert_eq!(stats["paused"], false);

    api.ctl(&["pause", "no_such_queue"])
        .await
        .failed(1, "unknown_queue:");
}

#[sqlx::test]
async fn clean_removes_finished_records(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let id = failed_job(&env).await;
    // Still within a long grace period: nothing removed.
    let text = api
        .ctl(&["clean", Q, "--status", "FAILED", "--grace-ms", "3600000"])
        .await
        .ok()
        .to_string();
    assert_eq!(field(&text, "removed"), Some("0"));
    let text = api
        .ctl(&[
            "clean",
            Q,
            "--status",
            "FAILED",
            "--grace-ms",
            "0",
            "--limit",
            "10",
        ])
        .await
        .ok()
        .to_string();
    assert_eq!(field(&text, "removed"), Some("1"));
    api.ctl(&["get", &id.to_string()])
        .await
        .failed(4, "not_found:");

    // A state that cannot be cleaned: the API names the valid ones.
    let ran = api.ctl(&["clean", Q, "--status", "PENDING"]).await;
    ran.failed(1, "invalid_field: status:");
    assert!(ran.stderr.contains("COMPLETED"), "{ran:#?}");
    // --status is required.
    assert_eq!(api.ctl(&["clean", Q]).await.code, 2);
}

#[sqlx::test]
async fn dlq_list_shows_dead_letters(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let text = api.ctl(&["dlq", "list", Q]).await.ok().to_string();
    assert!(text.contains("no dead letters"), "{text}");

    let id = failed_job(&env).await;
    let text = api.ctl(&["dlq", "list", Q]).await.ok().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("JOB ID"), "{text}");
    let row = lines
        .iter()
        .find(|l| l.starts_with(&id.to_string()))
        .unwrap_or_else(|| panic!("{id} missing: {text}"));
    assert!(row.contains("FAIL") && row.ends_with("nope"), "{text}");

    let letters = api.ctl(&["dlq", "list", Q, "--json"]).await.json();
    assert_eq!(letters[0]["jobId"], id.to_string());
    assert_eq!(letters[0]["attempts"], 1);
    api.ctl(&["dlq", "list", "no_such_queue"])
        .await
        .failed(1, "unknown_queue:");
}

#[sqlx::test]
async fn dlq_replay_retries_named_or_all_dead_letters(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let first = failed_job(&env).await;
    let second = failed_job(&env).await;

    let text = api
        .ctl(&["dlq", "replay", Q, "--job-id", &first.to_string()])
        .await
        .ok()
        .to_string();
    assert_eq!(field(&text, "replayed"), Some("1"), "{text}");
    assert_eq!(env.job(first).await.status, JobStatus::Pending);
    assert_eq!(env.job(second).await.status, JobStatus::Failed);

    let all = api.ctl(&["dlq", "replay", Q, "--json"]).await.json();
    assert_eq!(all, json!({"replayed": 1}));
    assert_eq!(env.job(second).await.status, JobStatus::Pending);
    let text = api.ctl(&["dlq", "list", Q]).await.ok().to_string();
    assert!(text.contains("no dead letters"), "{text}");

    api.ctl(&["dlq", "replay", Q, "--job-id", "not-a-uuid"])
        .await
        .failed(1, "");
}

#[sqlx::test]
async fn workers_lists_live_workers(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let text = api.ctl(&["workers"]).await.ok().to_string();
    assert!(text.contains("no live workers"), "{text}");

    let worker = env.worker(&[Q], Some(3));
    let text = wait_for(LONG, || async {
        let text = api.ctl(&["workers"]).await.ok().to_string();
        if text.contains(&worker.id) {
            Ok(text)
        } else {
            Err(format!("worker never listed: {text}"))
        }
    })
    .await;
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("LAST HEARTBEAT"),
        "{text}"
    );
    let row: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with(&worker.id))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[2], std::process::id().to_string(), "{text}");
    assert_eq!(row[3], Q, "{text}");
    assert_eq!(row[4], "3", "{text}");
    let workers = api.ctl(&["workers", "--json"]).await.json();
    assert!(workers
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["id"] == worker.id.as_str()));
    worker.stop().await;
}

#[sqlx::test]
async fn status_reports_health(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let text = api.ctl(&["status"]).await.ok().to_string();
    assert_eq!(field(&text, "api"), Some("healthy"), "{text}");
    assert!(
        field(&text, "postgres").is_some_and(|v| v.starts_with("up")),
        "{text}"
    );
    assert!(
        field(&text, "redis").is_some_and(|v| v.starts_with("up")),
        "{text}"
    );
    assert!(text.contains("system status"), "{text}");

    let status = api.ctl(&["status", "--json"]).await.json();
    assert_eq!(status["health"]["status"], "healthy");
    // `system` is the system status route's answer, or null while it is not served.
    assert!(
        status["system"].is_object() || status["system"].is_null(),
        "{status}"
    );

    // /health needs no token: without one, status still works (system skipped).
    let ran = run_ctl(&api.url, None, &["status"]).await;
    assert!(ran.ok().contains("skipped (no token)"), "{ran:#?}");
}

#[sqlx::test]
async fn authors_create_list_and_get(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let text = api
        .ctl(&[
            "authors",
            "create",
            "Jane Austen",
            "--wikidata-id",
            "Q36322",
        ])
        .await
        .ok()
        .to_string();
    let id = field(&text, "id").expect("id line").to_string();
    assert_eq!(field(&text, "name"), Some("Jane Austen"), "{text}");
    assert_eq!(field(&text, "wikidataId"), Some("Q36322"), "{text}");
    let other = api
        .ctl(&["authors", "create", "Anonymous", "--json"])
        .await
        .json();
    assert_eq!(other["wikidataId"], Value::Null);

    // The API's refusals: a taken id (409) and a malformed one (400) exit 1.
    api.ctl(&["authors", "create", "J. Austen", "--wikidata-id", "Q36322"])
        .await
        .failed(1, "conflict: wikidataId");
    api.ctl(&["authors", "create", "X", "--wikidata-id", "42"])
        .await
        .failed(1, "invalid_field: wikidataId");

    // `authors` alone lists, newest first, as `authors list` does.
    for args in [&["authors"][..], &["authors", "list"][..]] {
        let text = api.ctl(args).await.ok().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["ID", "NAME", "WIKIDATA", "BORN", "DIED", "CREATED", "AT"],
            "{text}"
        );
        assert!(
            lines[1].starts_with(other["id"].as_str().unwrap()),
            "{text}"
        );
        assert!(
            lines[2].starts_with(&id) && lines[2].contains("Q36322"),
            "{text}"
        );
        assert!(lines[3].contains("page 1 of 1, 2 authors in all"), "{text}");
    }
    let page = api
        .ctl(&["authors", "list", "--limit", "1", "--page", "2", "--json"])
        .await
        .json();
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["id"], id);

    let text = api.ctl(&["authors", "get", &id]).await.ok().to_string();
    assert_eq!(field(&text, "name"), Some("Jane Austen"), "{text}");
    assert_eq!(field(&text, "countries"), Some("[]"), "{text}");
    let missing = Uuid::new_v4().to_string();
    let ran = api.ctl(&["authors", "get", &missing]).await;
    ran.failed(4, "not_found:");
    assert!(ran.stderr.contains(&missing), "{ran:#?}");
    api.ctl(&["authors", "list", "--limit", "101"])
        .await
        .failed(1, "invalid_field: limit:");
}

#[sqlx::test]
async fn books_and_quotes_list_filter_and_get(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let store = env.conveyor.store();
    let import = |identifier: &str, author: &str| NewBook {
        identifier: identifier.into(),
        title: format!("Book {identifier}"),
        author: Some(author.into()),
        language: Some("en".into()),
        source_path: Some(format!("{identifier}.epub")),
        chapters: vec![NewChapter::new(None, "three short words".into())],
    };
    let mine = store
        .upsert_book(&import("b1", "Mary Shelley"))
        .await
        .unwrap();
    let theirs = store
        .upsert_book(&import("b2", "Bram Stoker"))
        .await
        .unwrap();
    let author = mine.author_id.unwrap().to_string();
    let long = "It was on a dreary night of November that I beheld the accomplishment of my toils.";
    let ids = store
        .insert_quotes(
            mine.book_id,
            &[NewQuote {
                text: long.into(),
                chapter: Some(5),
            }],
        )
        .await
        .unwrap();
    store
        .insert_quotes(
            theirs.book_id,
            &[NewQuote {
                text: "Listen to them.".into(),
                chapter: None,
            }],
        )
        .await
        .unwrap();
    store
        .set_quote_categories(ids[0], &["night".into(), "work".into()])
        .await
        .unwrap();
    store
        .set_quote_translation(ids[0], "zh", "十一月一个阴郁的夜晚。")
        .await
        .unwrap();

    let text = api
        .ctl(&["books", "list", "--author-id", &author])
        .await
        .ok()
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "TITLE", "AUTHOR", "ID", "LANGUAGE", "CHAPTERS", "WORDS", "CEFR", "CREATED", "AT"],
        "{text}"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].starts_with(&mine.book_id.to_string()), "{text}");
    assert!(
        lines[1].contains("Book b1") && lines[1].contains(&author),
        "{text}"
    );
    assert!(lines[2].contains("page 1 of 1, 1 books in all"), "{text}");
    let all = api.ctl(&["books", "--json"]).await.json();
    assert_eq!(all["total"], 2);
    let text = api
        .ctl(&["books", "get", &mine.book_id.to_string()])
        .await
        .ok()
        .to_string();
    assert_eq!(field(&text, "title"), Some("Book b1"), "{text}");
    assert_eq!(field(&text, "wordCount"), Some("3"), "{text}");
    api.ctl(&["books", "list", "--author-id", "nope"])
        .await
        .failed(1, "invalid_field: authorId:");

    let text = api
        .ctl(&["quotes", "list", "--book-id", &mine.book_id.to_string()])
        .await
        .ok()
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "BOOK", "ID", "CHAPTER", "CATEGORIES", "TEXT"],
        "{text}"
    );
    assert!(lines[1].starts_with(&ids[0].to_string()), "{text}");
    assert!(
        lines[1].contains(" 5 ") && lines[1].contains("night,work"),
        "{text}"
    );
    assert!(
        lines[1].ends_with('…') && lines[1].contains("It was on a dreary night"),
        "long texts are cut: {text}"
    );
    assert!(lines[2].contains("1 quotes in all"), "{text}");
    let quote = api
        .ctl(&["quotes", "get", &ids[0].to_string(), "--json"])
        .await
        .json();
    assert_eq!(quote["text"], long);
    assert_eq!(quote["translations"]["zh"], "十一月一个阴郁的夜晚。");
    let text = api.ctl(&["quotes"]).await.ok().to_string();
    assert!(text.contains("2 quotes in all"), "{text}");
    api.ctl(&["quotes", "get", &Uuid::new_v4().to_string()])
        .await
        .failed(4, "not_found:");
    // No quotes on a page past the data.
    let text = api
        .ctl(&["quotes", "list", "--page", "5"])
        .await
        .ok()
        .to_string();
    assert_eq!(text, "no quotes (page 5, 2 in all)\n");
}
