//! What each scenario records: its figures under `scenarios[key]` and its table
//! rows.

use serde_json::{json, Map};

use super::{Report, Target};
use crate::measure::percentile;
use crate::scenarios::Pruned;

impl Report {
    pub(crate) fn throughput(
        &mut self,
        key: &'static str,
        label: &str,
        jobs: usize,
        seconds: f64,
        target: Target,
    ) {
        let rate = jobs as f64 / seconds.max(1e-9);
        eprintln!("[bench]    {jobs} jobs in {seconds:.3} s = {rate:.0} jobs/s");
        self.scenarios.insert(
            key.into(),
            json!({ "jobs": jobs, "seconds": seconds, "jobs_per_s": rate }),
        );
        let bull = match key {
            "bulk_enqueue_library" | "bulk_enqueue_api" => "bulk_enqueue",
            other => other,
        };
        self.push(label, "jobs/s", rate, target, Some((bull, "jobs_per_s")));
    }

    pub(crate) fn latency(
        &mut self,
        key: &'static str,
        label: &str,
        jobs: usize,
        sorted_ms: &[f64],
        p50_target: Option<f64>,
        p99_target: Option<f64>,
    ) {
        let (p50, p99, max) = p50_p99_max(sorted_ms);
        let mean = sorted_ms.iter().sum::<f64>() / sorted_ms.len().max(1) as f64;
        eprintln!("[bench]    p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms");
        self.scenarios.insert(
            key.into(),
            json!({ "jobs": jobs, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "mean_ms": mean }),
        );
        let at_most = |t: Option<f64>| t.map_or(Target::None, Target::AtMost);
        self.push(
            label,
            "p50 ms",
            p50,
            at_most(p50_target),
            Some((key, "p50_ms")),
        );
        self.push(
            label,
            "p99 ms",
            p99,
            at_most(p99_target),
            Some((key, "p99_ms")),
        );
        self.push(label, "max ms", max, Target::None, Some((key, "max_ms")));
    }

    pub(crate) fn requests(
        &mut self,
        key: &'static str,
        label: &str,
        connections: usize,
        seconds: f64,
        sorted_ms: &[f64],
        errors: usize,
    ) {
        let rate = sorted_ms.len() as f64 / seconds.max(1e-9);
        let (p50, p99, max) = p50_p99_max(sorted_ms);
        eprintln!(
            "[bench]    {} requests ({errors} errors) in {seconds:.2} s = {rate:.0}/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
            sorted_ms.len()
        );
        self.scenarios.insert(
            key.into(),
            json!({
                "connections": connections,
                "seconds": seconds,
                "requests": sorted_ms.len(),
                "errors": errors,
                "requests_per_s": rate,
                "p50_ms": p50,
                "p99_ms": p99,
                "max_ms": max,
            }),
        );
        self.push(label, "requests/s", rate, Target::AtLeast(5_000.0), None);
        self.push(label, "p50 ms", p50, Target::None, None);
        self.push(label, "p99 ms", p99, Target::None, None);
    }

    /// Scenario 7: per route, the latency of sequential requests (p99 target
    /// `p99_target_ms`), under `scenarios[key].routes[route]`.
    pub(crate) fn route_latencies(
        &mut self,
        key: &'static str,
        label: &str,
        records: usize,
        fill_seconds: f64,
        routes: &[(String, Vec<f64>)],
        p99_target_ms: f64,
    ) {
        let mut figures = Map::new();
        for (route, sorted_ms) in routes {
            let (p50, p99, max) = p50_p99_max(sorted_ms);
            eprintln!("[bench]    GET {route}: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
            figures.insert(
                route.clone(),
                json!({ "requests": sorted_ms.len(), "p50_ms": p50, "p99_ms": p99, "max_ms": max }),
            );
            let label = format!("{label}: GET {route}");
            self.push(&label, "p50 ms", p50, Target::None, None);
            self.push(&label, "p99 ms", p99, Target::AtMost(p99_target_ms), None);
            self.push(&label, "max ms", max, Target::None, None);
        }
        self.scenarios.insert(
            key.into(),
            json!({ "records": records, "fill_seconds": fill_seconds, "routes": figures }),
        );
    }

    /// A ratio of two figures of the run (e.g. a rate with history ÷ the same rate
    /// without), under `scenarios[key].ratio`.
    pub(crate) fn ratio(
        &mut self,
        key: &'static str,
        label: &str,
        metric: &'static str,
        value: f64,
        target: Target,
    ) {
        eprintln!("[bench]    {metric}: {value:.3}");
        self.scenarios.insert(key.into(), json!({ "ratio": value }));
        self.push(label, metric, value, target, None);
    }

    /// Scenario 8's retention: records pruned per second, and what pruning a day
    /// of history written at `drain_rate` jobs/s costs in percent of one core
    /// (`drain_rate` × PostgreSQL CPU seconds per record × 100).
    pub(crate) fn retention(&mut self, pruned: &Pruned, drain_rate: f64, share_target: Target) {
        let records = pruned.records.max(1) as f64;
        let rate = records / pruned.seconds.max(1e-9);
        let cpu_per_record = pruned.postgres_cpu_s / records;
        let share = drain_rate * cpu_per_record * 100.0;
        eprintln!(
            "[bench]    {} records in {:.3} s = {rate:.0} records/s, PostgreSQL {:.1} CPU s ({:.1} of it vacuum): a day at {drain_rate:.0} jobs/s costs {share:.1} % of a core",
            pruned.records, pruned.seconds, pruned.postgres_cpu_s, pruned.vacuum_cpu_s
        );
        self.scenarios.insert(
            "retention".into(),
            json!({
                "records": pruned.records,
                "seconds": pruned.seconds,
                "postgres_cpu_s": pruned.postgres_cpu_s,
                "vacuum_cpu_s": pruned.vacuum_cpu_s,
                "share_of_a_core_percent": share,
            }),
        );
        let label =
            "8. retention of the history (expired days dropped, the rest deleted, then VACUUM)";
        self.push(label, "records/s", rate, Target::None, None);
        self.push(
            label,
            "% of a core for a day at the drain's rate",
            share,
            share_target,
            None,
        );
    }

    /// Scenario 6: The worker's CPU (during the drain), peak RSS (drain and end to end) and
    /// idle RSS.
    pub(crate) fn worker_resources(
        &mut self,
        drain: &crate::scenarios::WorkerFigures,
        other_peak_kb: u64,
        idle_rss_kb: u64,
        jobs: usize,
    ) {
        let n = drain.jobs.max(1) as f64;
        let cpu = &drain.cpu;
        let per_1000 = cpu.worker * 1_000.0 / n;
        let system_ms_per_job = cpu.system() * 1_000.0 / n;
        let machine_ms_per_job = cpu.machine * 1_000.0 / n;
        let peak_mb = drain.peak_rss_kb.max(other_peak_kb) as f64 / 1024.0;
        let idle_mb = idle_rss_kb as f64 / 1024.0;
        self.scenarios.insert(
            "worker_resources".into(),
            json!({
                "jobs": jobs,
                "worker_cpu_seconds": cpu.worker,
                "worker_cpu_seconds_per_1000_jobs": per_1000,
                "redis_cpu_seconds": cpu.redis,
                "postgres_cpu_seconds": cpu.postgres,
                "poll_backend_cpu_seconds": cpu.poller,
                "system_cpu_seconds": cpu.system(),
                "system_cpu_ms_per_job": system_ms_per_job,
                "machine_cpu_seconds": cpu.machine,
                "machine_cpu_ms_per_job": machine_ms_per_job,
                "peak_rss_mb": peak_mb,
                "idle_rss_mb": idle_mb,
            }),
        );
        let label = "6. worker resources (CPU during drain)";
        let rows = [
            (
                "worker CPU s / 1 000 jobs",
                per_1000,
                Target::None,
                Some(("cpu", "worker_cpu_seconds_per_1000_jobs")),
            ),
            (
                "Redis CPU s / 1 000 jobs",
                cpu.redis * 1_000.0 / n,
                Target::None,
                Some(("cpu", "redis_cpu_seconds_per_1000_jobs")),
            ),
            (
                "PostgreSQL CPU s / 1 000 jobs (without the bench's polls)",
                (cpu.postgres - cpu.poller).max(0.0) * 1_000.0 / n,
                Target::None,
                None,
            ),
            (
                "bench's completion polls, PostgreSQL CPU s / 1 000 jobs",
                cpu.poller * 1_000.0 / n,
                Target::None,
                None,
            ),
            (
                "CPU ms / job, worker + Redis + PostgreSQL",
                system_ms_per_job,
                Target::AtMostTimesBullmq(0.5),
                Some(("cpu", "system_cpu_ms_per_job")),
            ),
            (
                "CPU ms / job, whole machine",
                machine_ms_per_job,
                Target::None,
                Some(("cpu", "machine_cpu_ms_per_job")),
            ),
            (
                "worker peak RSS MB",
                peak_mb,
                Target::AtMost(50.0),
                Some(("cpu", "peak_rss_mb")),
            ),
            (
                "worker idle RSS MB",
                idle_mb,
                Target::AtMost(10.0),
                Some(("cpu", "idle_rss_mb")),
            ),
        ];
        for (metric, value, target, bullmq) in rows {
            self.push(label, metric, value, target, bullmq);
        }
    }
}

/// Median, 99th percentile and maximum of sorted values (0 when empty).
fn p50_p99_max(sorted: &[f64]) -> (f64, f64, f64) {
    (
        percentile(sorted, 0.50),
        percentile(sorted, 0.99),
        sorted.last().copied().unwrap_or(0.0),
    )
}
