//! A worker's identity: unique per process start, never only a name, so a restarted
//! or duplicated worker can never inherit another's jobs.

use rand::Rng;

#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    pub id: String,
    pub host: String,
    pub pid: u32,
}

impl WorkerIdentity {
    pub fn new() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown-host".into());
        let pid = std::process::id();
        let nonce: u32 = rand::rng().random();
        Self {
            id: format!("{host}:{pid}:{nonce:08x}"),
            host,
            pid,
        }
    }
}

impl Default for WorkerIdentity {
    fn default() -> Self {
        Self::new()
    }
}
