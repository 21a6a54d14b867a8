//! The binaries' logs: `[log] format = "json"` writes one JSON object per line,
//! levels come from `RUST_LOG`, and a bad format stops the binary naming the key.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conveyor_tests::{bin_path, repo_root, TestEnv};
use serde_json::Value;
use sqlx::PgPool;

fn worker(env: &TestEnv, format: &str) -> Command {
    let mut cmd = Command::new(bin_path("conveyor-worker"));
    cmd.args(["--queues", "diagnostics"])
        .current_dir(repo_root())
        .env("DATABASE_URL", &env.db_url)
        .env("REDIS_URL", &env.redis_url)
        .env("CONVEYOR_REDIS_PREFIX", &env.prefix)
        .env("CONVEYOR_CONFIG", repo_root().join("config/conveyor.toml"))
        .env("CONVEYOR__LOG__FORMAT", format)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[sqlx::test]
async fn json_logs_are_one_object_per_line(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let mut child = worker(&env, "json").spawn().expect("spawn the worker");
    let stdout = child.stdout.take().expect("stdout");
    // Read on a thread: the worker keeps running until killed.
    let lines = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("utf-8 line");
            let started = line.contains("worker started");
            seen.push(line);
            if started || Instant::now() > deadline {
                break;
            }
        }
        seen
    });
    let lines = tokio::task::spawn_blocking(move || lines.join().expect("reader"))
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();

    assert!(!lines.is_empty(), "the worker logged nothing");
    for line in &lines {
        let event: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        assert!(event["level"].is_string(), "{line}");
        assert!(event["timestamp"].is_string(), "{line}");
    }
    let started: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(started["fields"]["message"], "worker started");
    assert_eq!(started["level"], "INFO");
}

#[sqlx::test]
async fn an_unknown_log_format_stops_the_binary_naming_the_key(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let out = worker(&env, "xml").output().expect("run the worker");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("log.format"), "{stderr}");
}
