//! Runs `conveyor-bench --quick` against the debug binaries so the benchmark cannot
//! rot: it must exit 0 and write every scenario's figures.
//!
//! Needs PostgreSQL (DATABASE_URL's server) and Redis (REDIS_URL), and the
//! workspace's binaries built (`cargo build --workspace --bins`; scripts/test.sh
//! does). The run uses a database and a Redis prefix of its own and removes both.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SCENARIOS: [&str; 12] = [
    "bulk_enqueue_library",
    "bulk_enqueue_api",
    "drain",
    "end_to_end",
    "pickup_latency",
    "single_post",
    "worker_resources",
    "admin_reads",
    "drain_empty",
    "drain_history",
    "history",
    "retention",
];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bin_dir() -> PathBuf {
    std::env::var_os("CONVEYOR_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"))
                .join("debug")
        })
}

#[test]
fn quick_mode_reports_every_scenario() {
    let bins = bin_dir();
    for bin in ["conveyor-api", "conveyor-worker"] {
        assert!(
            bins.join(bin).exists(),
            "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
            bins.join(bin).display()
        );
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let database = format!("conveyor_bench_quick_{}", &id[..12]);
    let output = std::env::temp_dir().join(format!("conveyor-bench-{id}.json"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_conveyor-bench"))
        .current_dir(repo_root())
        .arg("--quick")
        .arg("--bin-dir")
        .arg(&bins)
        .arg("--database")
        .arg(&database)
        .arg("--output")
        .arg(&output)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn conveyor-bench");

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("conveyor-bench --quick did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = {
        use std::io::Read;
        let mut s = String::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut s)
            .expect("read stdout");
        s
    };
    eprintln!("{stdout}");
    assert!(status.success(), "conveyor-bench --quick failed: {status}");
    assert!(
        stdout.contains("| scenario | metric | Conveyor |"),
        "no table on stdout"
    );

    let text = std::fs::read_to_string(&output).expect("results JSON written");
    let _ = std::fs::remove_file(&output);
    let results: Value = serde_json::from_str(&text).expect("results are JSON");
    assert_eq!(results["mode"], "quick");
    assert_eq!(results["jobs"], 2_000);
    let scenarios = results["scenarios"].as_object().expect("scenarios object");
    for name in SCENARIOS {
        assert!(
            scenarios.contains_key(name),
            "scenario {name} missing: {text}"
        );
    }
    let positive = |scenario: &str, field: &str| {
        let v = scenarios[scenario][field].as_f64().unwrap_or(-1.0);
        assert!(v > 0.0, "{scenario}.{field} = {v}");
    };
    for s in [
        "bulk_enqueue_library",
        "bulk_enqueue_api",
        "drain",
        "end_to_end",
    ] {
        positive(s, "jobs_per_s");
    }
    positive("pickup_latency", "p50_ms");
    positive("pickup_latency", "p99_ms");
    positive("single_post", "requests_per_s");
    positive("worker_resources", "peak_rss_mb");
    positive("worker_resources", "idle_rss_mb");
    positive("retention", "records");
    let routes = scenarios["admin_reads"]["routes"]
        .as_object()
        .expect("admin_reads.routes");
    assert!(routes.len() >= 10, "{text}");
    for (route, figures) in routes {
        assert!(figures["p99_ms"].as_f64().unwrap_or(-1.0) > 0.0, "{route}");
    }
    // A loaded CI machine may refuse the odd request; the run itself must work.
    let errors = scenarios["single_post"]["errors"]
        .as_u64()
        .unwrap_or(u64::MAX);
    let requests = scenarios["single_post"]["requests"].as_u64().unwrap_or(0);
    assert!(errors <= requests / 100, "{errors} failed POSTs: {text}");
}
