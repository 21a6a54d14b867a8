//! Readings from /proc (CPU time, memory) and percentiles.

use std::collections::HashMap;

use anyhow::{Context, Result};

/// Clock ticks per second of the CPU times in /proc (`getconf CLK_TCK`, else 100).
pub(crate) fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of process `pid`, in clock ticks.
pub(crate) fn proc_cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start with field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("/proc/{pid}/stat: field {n}"))
    };
    Ok(field(14)? + field(15)?)
}

/// A `kB` line of /proc/<pid>/status (VmRSS, VmHWM, …), in KiB.
pub(crate) fn proc_status_kb(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("/proc/{pid}/status has no {key}"))
}

/// Busy clock ticks of the whole machine (every CPU, every process) from /proc/stat.
pub(crate) fn machine_busy_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let cpu = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat has no cpu line")?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: all but idle and iowait.
    Ok(v.iter()
        .enumerate()
        .take(8)
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| *t)
        .sum())
}

/// CPU ticks of every local PostgreSQL process (0 when PostgreSQL is not local).
pub(crate) fn postgres_cpu_ticks() -> u64 {
    pids_named("postgres")
        .into_iter()
        .filter_map(|p| proc_cpu_ticks(p).ok())
        .sum()
}

/// CPU ticks of each local PostgreSQL process at one moment. A sum over the
/// processes alive at two moments is no measure of what happened between them:
/// a process that ends (a client's connection closing) takes its ticks out of
/// the second sum, which then may even fall.
pub(crate) struct PostgresCpu(HashMap<u32, u64>);

impl PostgresCpu {
    pub(crate) fn now() -> Self {
        Self(
            pids_named("postgres")
                .into_iter()
                .filter_map(|p| Some((p, proc_cpu_ticks(p).ok()?)))
                .collect(),
        )
    }

    /// Ticks the processes alive now used since `self` (one started meanwhile
    /// counts from zero; one that ended meanwhile is left out).
    pub(crate) fn ticks_since(&self) -> u64 {
        Self::now()
            .0
            .iter()
            .map(|(pid, t)| t.saturating_sub(self.0.get(pid).copied().unwrap_or(0)))
            .sum()
    }
}

/// Pids of the local processes whose command name is `comm` (e.g. `postgres`).
pub(crate) fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm)
        })
        .collect()
}

/// True when `pid` is a local process whose command name starts with `prefix`.
pub(crate) fn is_process(pid: u32, prefix: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(prefix))
}

/// CPU ticks used so far by the parts of the system under test.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuSnapshot {
    worker: u64,
    redis: u64,
    postgres: u64,
    poller: u64,
    machine: u64,
}

/// CPU seconds between two snapshots.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuUse {
    /// The conveyor-worker process.
    pub(crate) worker: f64,
    /// redis-server (0 when Redis is not local).
    pub(crate) redis: f64,
    /// Every local postgres process (0 when PostgreSQL is not local), including the
    /// backend serving the bench's own completion polls.
    pub(crate) postgres: f64,
    /// The backend serving the bench's completion polls (a cost of measuring).
    pub(crate) poller: f64,
    /// The whole machine, every process.
    pub(crate) machine: f64,
}

impl CpuUse {
    /// Worker + Redis + PostgreSQL, without the bench's own polling.
    pub(crate) fn system(&self) -> f64 {
        self.worker + self.redis + (self.postgres - self.poller).max(0.0)
    }
}

/// Reads the CPU time of the worker, Redis, PostgreSQL, the polling backend and the
/// machine. Processes that cannot be read count 0.
pub(crate) fn cpu_snapshot(worker: u32, redis: Option<u32>, poller: Option<u32>) -> CpuSnapshot {
    let ticks = |pid: Option<u32>| pid.and_then(|p| proc_cpu_ticks(p).ok()).unwrap_or(0);
    CpuSnapshot {
        worker: ticks(Some(worker)),
        redis: ticks(redis),
        postgres: postgres_cpu_ticks(),
        poller: ticks(poller),
        machine: machine_busy_ticks().unwrap_or(0),
    }
}

impl CpuSnapshot {
    pub(crate) fn since(&self, before: &CpuSnapshot, ticks_per_second: f64) -> CpuUse {
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / ticks_per_second;
        CpuUse {
            worker: d(self.worker, before.worker),
            redis: d(self.redis, before.redis),
            postgres: d(self.postgres, before.postgres),
            poller: d(self.poller, before.poller),
            machine: d(self.machine, before.machine),
        }
    }
}

/// The `q` quantile (0..=1) of sorted values (nearest rank); 0 when empty.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        proc_cpu_ticks(pid).unwrap();
        assert!(proc_status_kb(pid, "VmRSS").unwrap() > 0);
        assert!(proc_status_kb(pid, "VmHWM").unwrap() > 0);
        machine_busy_ticks().unwrap();
        assert!(ticks_per_second() > 0.0);
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
    }
}
