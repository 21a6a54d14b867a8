//! A figure's target, absolute or relative to BullMQ's figure.

use super::table::fmt;
use super::{Report, Row};

/// BullMQ 6.7 figures measured once on a reference machine, by (scenario,
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
    pub(super) fn text(self) -> String {
        match self {
            Target::None => "—".into(),
            Target::AtLeast(v) => format!("≥ {}", fmt(v)),
            Target::AtMost(v) => format!("≤ {}", fmt(v)),
            Target::TimesBullmq(f) => format!("≥ {f}x BullMQ"),
            Target::AtMostTimesBullmq(f) => format!("≤ {f}x BullMQ"),
        }
    }
    pub(super) fn met(self, value: f64) -> Option<bool> {
        match self {
            Target::None => None,
            Target::AtLeast(v) => Some(value >= v),
            Target::AtMost(v) => Some(value <= v),
            Target::TimesBullmq(_) | Target::AtMostTimesBullmq(_) => None,
        }
    }
}

impl Report {
    /// BullMQ's figure at `at`: measured in this run, else `BULLMQ_REFERENCE`.
    fn bullmq_base(&self, at: (&str, &str)) -> Option<f64> {
        self.bullmq_figure(at).or_else(|| {
            BULLMQ_REFERENCE
                .iter()
                .find(|(k, _)| *k == at)
                .map(|(_, v)| *v)
        })
    }

    /// A row's target with ratios to BullMQ turned into absolute figures.
    pub(super) fn resolved(&self, row: &Row) -> Target {
        let base = || row.bullmq.and_then(|at| self.bullmq_base(at));
        match row.target {
            Target::TimesBullmq(f) => base().map_or(Target::None, |b| Target::AtLeast(f * b)),
            Target::AtMostTimesBullmq(f) => base().map_or(Target::None, |b| Target::AtMost(f * b)),
            t => t,
        }
    }

    pub(super) fn target_text(&self, row: &Row) -> String {
        match (row.target, self.resolved(row)) {
            (t @ (Target::TimesBullmq(_) | Target::AtMostTimesBullmq(_)), r) => {
                format!("{} ({})", t.text(), r.text())
            }
            (_, r) => r.text(),
        }
    }
}
