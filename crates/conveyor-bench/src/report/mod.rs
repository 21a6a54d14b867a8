//! The figures of a run: JSON document and markdown table.

use serde_json::{json, Map, Value};

use crate::measure::percentile;

/// BullMQ 6.7 figures measured on the reference machine (issue 6), by (scenario,
/// field) of the BullMQ JSON; ratio targets use them unless the run measured BullMQ
/// itself (`--with-bullmq`).
const BULLMQ_REFERENCE: [((&str, &str), f64); 4] = [
    (("bulk_enqueue", "jobs_per_s"), 22_500.0),
    (("drain", "jobs_per_s"), 16_200.0),
    (("end_to_end", "jobs_per_s"), 9_700.0),
    (("cpu", "system_cpu_ms_per_job"), 0.17),
];

/// A figure's goal (full mode only).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    None,
    AtLeast(f64),
    AtMost(f64),
    /// At least this many times BullMQ's figure (higher is better).
    TimesBullmq(f64),
    /// At most this many times BullMQ's figure (lower is better).
    AtMostTimesBullmq(f64),
}

impl Target {
    fn text(self) -> String {
        match self {
            Target::None => "—".into(),
            Target::AtLeast(v) => format!("≥ {}", fmt(v)),
            Target::AtMost(v) => format!("≤ {}", fmt(v)),
            Target::TimesBullmq(f) => format!("≥ {f}x BullMQ"),
            Target::AtMostTimesBullmq(f) => format!("≤ {f}x BullMQ"),
        }
    }
    fn met(self, value: f64) -> Option<bool> {
        match self {
            Target::None => None,
            Target::AtLeast(v) => Some(value >= v),
            Target::AtMost(v) => Some(value <= v),
            Target::TimesBullmq(_) | Target::AtMostTimesBullmq(_) => None,
        }
    }
}

struct Row {
    label: String,
    metric: &'static str,
    value: f64,
    target: Target,
    /// Where the same figure sits in BullMQ's JSON: (scenario, field).
    bullmq: Option<(&'static str, &'static str)>,
}

pub(crate) struct Report {
    quick: bool,
    jobs: usize,
    environment: Value,
    scenarios: Map<String, Value>,
    rows: Vec<Row>,
    bullmq: Option<Value>,
}

impl Report {
    pub(crate) fn new(quick: bool, jobs: usize) -> Self {
        Self {
            quick,
            jobs,
            environment: Value::Null,
            scenarios: Map::new(),
            rows: Vec::new(),
            bullmq: None,
        }
    }

    pub(crate) fn set_environment(&mut self, env: Value) {
        self.environment = env;
    }

    pub(crate) fn set_bullmq(&mut self, figures: Value) {
        self.bullmq = Some(figures);
    }

    /// BullMQ's figure at `at`: measured in this run, else issue 6's reference.
    fn bullmq_base(&self, at: (&str, &str)) -> Option<f64> {
        self.bullmq_figure(at).or_else(|| {
            BULLMQ_REFERENCE
                .iter()
                .find(|(k, _)| *k == at)
                .map(|(_, v)| *v)
        })
    }

    /// A row's target with ratios to BullMQ turned into absolute figures.
    fn resolved(&self, row: &Row) -> Target {
        let base = || row.bullmq.and_then(|at| self.bullmq_base(at));
        match row.target {
            Target::TimesBullmq(f) => base().map_or(Target::None, |b| Target::AtLeast(f * b)),
            Target::AtMostTimesBullmq(f) => base().map_or(Target::None, |b| Target::AtMost(f * b)),
            t => t,
        }
    }

    fn target_text(&self, row: &Row) -> String {
        match (row.target, self.resolved(row)) {
            (t @ (Target::TimesBullmq(_) | Target::AtMostTimesBullmq(_)), r) => {
                format!("{} ({})", t.text(), r.text())
            }
            (_, r) => r.text(),
        }
    }

    fn target(&self, t: Target) -> Target {
        if self.quick {
            Target::None
        } else {
            t
        }
    }

    fn push(
        &mut self,
        label: &str,
        metric: &'static str,
        value: f64,
        target: Target,
        bullmq: Option<(&'static str, &'static str)>,
    ) {
        let target = self.target(target);
        self.rows.push(Row {
            label: label.to_string(),
            metric,
            value,
            target,
            bullmq,
        });
    }

    /// Merges `extra` (an object) into scenario `key`.
    pub(crate) fn extend(&mut self, key: &str, extra: Value) {
        if let (Some(Value::Object(s)), Value::Object(e)) = (self.scenarios.get_mut(key), extra) {
            s.extend(e);
        }
    }

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
        let (p50, p99) = (percentile(sorted_ms, 0.50), percentile(sorted_ms, 0.99));
        let max = sorted_ms.last().copied().unwrap_or(0.0);
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
        let (p50, p99) = (percentile(sorted_ms, 0.50), percentile(sorted_ms, 0.99));
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
                "max_ms": sorted_ms.last().copied().unwrap_or(0.0),
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
            let (p50, p99) = (percentile(sorted_ms, 0.50), percentile(sorted_ms, 0.99));
            let max = sorted_ms.last().copied().unwrap_or(0.0);
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
        self.push(
            label,
            "worker CPU s / 1 000 jobs",
            per_1000,
            Target::None,
            Some(("cpu", "worker_cpu_seconds_per_1000_jobs")),
        );
        self.push(
            label,
            "Redis CPU s / 1 000 jobs",
            cpu.redis * 1_000.0 / n,
            Target::None,
            Some(("cpu", "redis_cpu_seconds_per_1000_jobs")),
        );
        self.push(
            label,
            "PostgreSQL CPU s / 1 000 jobs (without the bench's polls)",
            (cpu.postgres - cpu.poller).max(0.0) * 1_000.0 / n,
            Target::None,
            None,
        );
        self.push(
            label,
            "bench's completion polls, PostgreSQL CPU s / 1 000 jobs",
            cpu.poller * 1_000.0 / n,
            Target::None,
            None,
        );
        self.push(
            label,
            "CPU ms / job, worker + Redis + PostgreSQL",
            system_ms_per_job,
            Target::AtMostTimesBullmq(0.5),
            Some(("cpu", "system_cpu_ms_per_job")),
        );
        self.push(
            label,
            "CPU ms / job, whole machine",
            machine_ms_per_job,
            Target::None,
            Some(("cpu", "machine_cpu_ms_per_job")),
        );
        self.push(
            label,
            "worker peak RSS MB",
            peak_mb,
            Target::AtMost(50.0),
            Some(("cpu", "peak_rss_mb")),
        );
        self.push(
            label,
            "worker idle RSS MB",
            idle_mb,
            Target::AtMost(10.0),
            Some(("cpu", "idle_rss_mb")),
        );
    }

    fn bullmq_figure(&self, (scenario, field): (&str, &str)) -> Option<f64> {
        self.bullmq.as_ref()?.get(scenario)?.get(field)?.as_f64()
    }

    pub(crate) fn markdown(&self) -> String {
        let with_bull = self
            .bullmq
            .as_ref()
            .is_some_and(|b| b.get("error").is_none());
        let env = &self.environment;
        let mut out = format!(
            "Conveyor benchmark, {} mode, {} jobs per throughput scenario — {} · {} CPUs ({}) · PostgreSQL {} · Redis {}\n\n",
            if self.quick { "quick" } else { "full" },
            self.jobs,
            env["date"].as_str().unwrap_or("?"),
            env["cpus"],
            env["cpu_model"].as_str().unwrap_or("?"),
            env["postgres"].as_str().unwrap_or("?"),
            env["redis"].as_str().unwrap_or("?"),
        );
        out.push_str("| scenario | metric | Conveyor | target |");
        if with_bull {
            out.push_str(" BullMQ | ratio |");
        }
        out.push('\n');
        out.push_str("|---|---|---:|---|");
        if with_bull {
            out.push_str("---:|---:|");
        }
        out.push('\n');
        // Rows were pushed in run order; show them in scenario order.
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| r.label.chars().next());
        for row in rows {
            let mark = match self.resolved(row).met(row.value) {
                Some(true) => " ✔",
                Some(false) => " ✘",
                None => "",
            };
            out.push_str(&format!(
                "| {} | {} | {} | {}{mark} |",
                row.label,
                row.metric,
                fmt(row.value),
                self.target_text(row)
            ));
            if with_bull {
                match row.bullmq.and_then(|b| self.bullmq_figure(b)) {
                    Some(b) if b > 0.0 => {
                        out.push_str(&format!(" {} | {:.2}x |", fmt(b), row.value / b))
                    }
                    _ => out.push_str(" — | — |"),
                }
            }
            out.push('\n');
        }
        if with_bull {
            out.push_str(
                "\nratio = Conveyor ÷ BullMQ (jobs/s: higher is better; ms, CPU and MB: lower is better).\n",
            );
        }
        if !with_bull && !self.quick {
            out.push_str(
                "\nTargets use issue 6's BullMQ reference figures (22 500 bulk, 16 200 drain, 9 700 end to end jobs/s, 0.17 ms CPU/job); run with --with-bullmq to measure BullMQ in the same run.\n",
            );
        }
        out
    }

    pub(crate) fn json(&self) -> Value {
        let mut ratios = Map::new();
        if self.bullmq.is_some() {
            for row in &self.rows {
                if let Some(b) = row.bullmq.and_then(|b| self.bullmq_figure(b)) {
                    if b > 0.0 {
                        ratios.insert(
                            format!("{} / {}", row.label, row.metric),
                            json!(row.value / b),
                        );
                    }
                }
            }
        }
        json!({
            "mode": if self.quick { "quick" } else { "full" },
            "jobs": self.jobs,
            "environment": self.environment,
            "scenarios": self.scenarios,
            "targets": self.rows.iter().filter_map(|r| {
                let met = self.resolved(r).met(r.value)?;
                Some(json!({ "scenario": r.label, "metric": r.metric, "value": r.value, "target": self.target_text(r), "met": met }))
            }).collect::<Vec<_>>(),
            "bullmq": self.bullmq,
            "ratios": ratios,
        })
    }
}

/// Numbers for the table: thousands grouped with a space, few decimals.
fn fmt(v: f64) -> String {
    if v.abs() >= 1_000.0 {
        let s = format!("{:.0}", v);
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(' ');
            }
            grouped.push(c);
        }
        format!("{sign}{grouped}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::fmt;

    #[test]
    fn formats() {
        assert_eq!(fmt(22_500.0), "22 500");
        assert_eq!(fmt(1_234_567.4), "1 234 567");
        assert_eq!(fmt(512.3), "512");
        assert_eq!(fmt(2.456), "2.46");
        assert_eq!(fmt(0.0851), "0.085");
    }
}
