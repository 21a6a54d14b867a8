//! Every Prometheus metric of the engine (docs/operations.md), defined here and only here. Labels come
//! from closed sets (configured queues, registered job types, fixed states).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Histogram buckets of job durations, 5 ms … 300 s.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The metrics of one process (cheap to clone).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub enqueued: IntCounterVec,
    completed: IntCounterVec,
    failed: IntCounterVec,
    retried: IntCounterVec,
    duration: HistogramVec,
    pub queue_jobs: IntGaugeVec,
    worker_busy: IntGaugeVec,
    worker_concurrency: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["queue", "job_type"])
                .expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let enqueued = counter("conveyor_jobs_enqueued_total", "Jobs enqueued.");
        let completed = counter("conveyor_jobs_completed_total", "Jobs completed.");
        let failed = counter("conveyor_jobs_failed_total", "Jobs failed for good.");
        let retried = counter(
            "conveyor_jobs_retried_total",
            "Attempts that failed and were scheduled again.",
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "conveyor_job_duration_seconds",
                "Duration of completed attempts.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["queue", "job_type"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(duration.clone()))
            .expect("unique metric");
        let queue_jobs = IntGaugeVec::new(
            Opts::new("conveyor_queue_jobs", "Jobs per queue and state."),
            &["queue", "state"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(queue_jobs.clone()))
            .expect("unique metric");
        let worker_busy = IntGaugeVec::new(
            Opts::new("conveyor_worker_busy", "Attempts running in this process."),
            &["queue"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(worker_busy.clone()))
            .expect("unique metric");
        let worker_concurrency = IntGaugeVec::new(
            Opts::new(
                "conveyor_worker_concurrency",
                "Attempts this process may run at once, per queue (follows the backlog when adaptive).",
            ),
            &["queue"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(worker_concurrency.clone()))
            .expect("unique metric");
        Self {
            registry,
            enqueued,
            completed,
            failed,
            retried,
            duration,
            queue_jobs,
            worker_busy,
            worker_concurrency,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn completed(&self, queue: &str, job_type: &str, took: chrono::TimeDelta) {
        self.completed.with_label_values(&[queue, job_type]).inc();
        let secs = took.num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
        self.duration
            .with_label_values(&[queue, job_type])
            .observe(secs);
    }
    pub(crate) fn failed(&self, queue: &str, job_type: &str) {
        self.failed.with_label_values(&[queue, job_type]).inc();
    }
    pub(crate) fn retried(&self, queue: &str, job_type: &str) {
        self.retried.with_label_values(&[queue, job_type]).inc();
    }
    pub(crate) fn busy(&self, queue: &str, delta: i64) {
        self.worker_busy.with_label_values(&[queue]).add(delta);
    }

    pub(crate) fn concurrency(&self, queue: &str, limit: u32) {
        self.worker_concurrency
            .with_label_values(&[queue])
            .set(i64::from(limit));
    }

    /// The Prometheus text format of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
