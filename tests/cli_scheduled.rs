//! `conveyorctl scheduled …` against the real `conveyor-api`: create, list, get,
//! enable, disable, pause, trigger, delete, and a 400 naming a bad cron expression.

use std::process::Command;

use conveyor_tests::{bin_path, ApiProcess, TestEnv};
use serde_json::Value;
use sqlx::PgPool;

/// Runs `conveyorctl --json args` against the API; answers (exit code, stdout, stderr).
async fn ctl(api: &ApiProcess, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(bin_path("conveyorctl"));
    cmd.arg("--json")
        .args(args)
        .env("CONVEYOR_URL", &api.url)
        .env("CONVEYOR_TOKEN", &api.token);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("conveyorctl runs");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

async fn ok_json(api: &ApiProcess, args: &[&str]) -> Value {
    let (code, stdout, stderr) = ctl(api, args).await;
    assert_eq!(code, 0, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
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
    let (code, _, _) = ctl(&api, &["scheduled", "get", &id]).await;
    assert_eq!(code, 4, "not found");

    let (code, stdout, stderr) = ctl(
        &api,
        &[
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
        ],
    )
    .await;
    assert_eq!(code, 1, "{stdout} {stderr}");
    assert!(stderr.contains("cronExpression"), "{stderr}");
}
