//! The binaries speak systemd's notification protocol (`Type=notify`): a fake
//! `NOTIFY_SOCKET` receives READY once they serve or claim, WATCHDOG pings while
//! their loops make progress, and STOPPING after SIGTERM.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use conveyor_tests::{TestEnv, WorkerProcess};
use sqlx::PgPool;
use tokio::net::UnixDatagram;
use uuid::Uuid;

/// systemd's watchdog interval for the test: the binaries ping every half of it.
const WATCHDOG_USEC: &str = "10000000";
const WAIT: Duration = Duration::from_secs(30);

/// A datagram socket standing in for systemd's.
struct FakeSystemd {
    socket: UnixDatagram,
    path: PathBuf,
    received: Vec<String>,
}

impl FakeSystemd {
    fn bind() -> Self {
        let path = std::env::temp_dir().join(format!("notify-{}.sock", Uuid::new_v4().simple()));
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Self {
            socket,
            path,
            received: Vec::new(),
        }
    }

    fn env(&self) -> [(&'static str, String); 2] {
        [
            ("NOTIFY_SOCKET", self.path.display().to_string()),
            ("WATCHDOG_USEC", WATCHDOG_USEC.to_string()),
        ]
    }

    /// Reads datagrams until one holds `line`; returns that datagram.
    async fn expect(&mut self, line: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let got = tokio::time::timeout(left, self.socket.recv(&mut buf)).await;
            let n = match got {
                Ok(Ok(n)) => n,
                _ => panic!("no {line:?} within {WAIT:?}; received {:?}", self.received),
            };
            let message = String::from_utf8_lossy(&buf[..n]).to_string();
            self.received.push(message.clone());
            if message.lines().any(|l| l == line) {
                return message;
            }
        }
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// READY (with a status line), then a WATCHDOG ping, then STOPPING after SIGTERM.
async fn speaks_the_protocol(
    env: &TestEnv,
    systemd: &mut FakeSystemd,
    process: &WorkerProcess,
    ready_status: &str,
) {
    let ready = systemd.expect("READY=1").await;
    assert!(
        ready.contains(&format!("STATUS={ready_status}")),
        "status line: {ready:?}"
    );
    systemd.expect("WATCHDOG=1").await;
    env.signal(process, "TERM");
    systemd.expect("STOPPING=1").await;
    assert!(env.wait_exit(process, WAIT).await, "exits after SIGTERM");
}

#[sqlx::test]
async fn the_worker_notifies_ready_watchdog_and_stopping(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let mut systemd = FakeSystemd::bind();
    let vars = systemd.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let worker = env.spawn_worker(&["--queues", "diagnostics"], &vars);
    speaks_the_protocol(&env, &mut systemd, &worker, "claiming from diagnostics").await;
}

#[sqlx::test]
async fn the_scheduler_notifies_ready_watchdog_and_stopping(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let mut systemd = FakeSystemd::bind();
    let vars = systemd.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let scheduler = env.spawn("conveyor-scheduler", &[], &vars);
    speaks_the_protocol(&env, &mut systemd, &scheduler, "firing schedules").await;
}

#[sqlx::test]
async fn the_api_notifies_ready_watchdog_and_stopping(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let mut systemd = FakeSystemd::bind();
    let vars = systemd.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let api = env.spawn_api(&vars).await;
    let process = WorkerProcess { pid: api.pid };
    speaks_the_protocol(&env, &mut systemd, &process, "serving on 127.0.0.1:").await;
}
