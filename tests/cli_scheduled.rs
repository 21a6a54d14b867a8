//! `conveyorctl scheduled …` against the real `conveyor-api`: create, list, get,
//! enable, disable, pause, trigger, delete, and a 400 naming a bad cron expression.

use conveyor_tests::{ApiProcess, TestEnv};
use serde_json::Value;
use sqlx::PgPool;

/// Runs `conveyorctl --json args` against the API; asserts it succeeded and
/// answers its JSON output.
async fn ok_json(api: &ApiProcess, args: &[&str]) -> Value {
    let all: Vec<&str> = ["--json"].iter().chain(args).copied().collect();
    api.ctl(&all).await.json()
}

#[sqlx::test]
async fn scheduled_commands_drive_the_scheduled_jobs_routes(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let created = ok_json(
        &api,
        &[
            "scheduled",
            "create",
            "--name",
            "hourly",
            "--queue",
            "diagnostics",
            "--type",
            "NOOP",
            "--cron",
            "0 0 * * * *",
            "--timezone",
            "UTC",
            "--retry-attempts",
            "2",
            "--priority",
            "HIGH",
        ],
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["priority"], 10);
    assert!(created["nextRunAt"].is_string());

    let list = ok_json(&api, &["scheduled", "list"]).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    for (cmd, status) in [("disable", 0), ("pause", 2), ("enable", 1)] {
        let s = ok_json(&api, &["scheduled", cmd, &id]).await;
        assert_eq!(s["status"], status, "{cmd}");
    }
    let got = ok_json(&api, &["scheduled", "get", &id]).await;
    assert_eq!(got["name"], "hourly");

    let job = ok_json(&api, &["scheduled", "trigger", &id]).await;
    assert_eq!(job["jobType"], "NOOP");
    assert_eq!(job["maxAttempts"], 2);

    let deleted = ok_json(&api, &["scheduled", "delete", &id]).await;
    assert_eq!(deleted["deleted"], true);
    let gone = api.ctl(&["--json", "scheduled", "get", &id]).await;
    assert_eq!(gone.code, 4, "not found: {gone:?}");

    let bad = api
        .ctl(&[
            "--json",
            "scheduled",
            "create",
            "--name",
            "bad",
            "--queue",
            "diagnostics",
            "--type",
            "NOOP",
            "--cron",
            "every hour",
        ])
        .await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("cronExpression"), "{bad:?}");
}
