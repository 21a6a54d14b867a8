//! Scenario 8: the drain of scenario 2 into a database that already holds a long
//! history of finished jobs, against the same drain into an empty one. A deployment
//! keeps weeks of records, so the rate on an empty table is only the best case;
//! the target is that history costs the drain less than 10 %.

use anyhow::Result;

use crate::report::{group_digits, Report, Target};
use crate::setup::Bench;

/// The share of the empty-table rate the drain must keep with history.
const FLAT_WITH_HISTORY: f64 = 0.9;

impl Bench {
    /// Drains N NOOPs into an empty database, then fills `history` finished records
    /// (COMPLETED, FAILED and CANCELLED, created over 30 days, with their attempt
    /// log) and drains N more; reports both rates and their ratio.
    pub(crate) async fn drain_with_history(
        &mut self,
        report: &mut Report,
        history: usize,
    ) -> Result<()> {
        let n = self.plan.jobs;
        self.reset().await?;
        eprintln!("[bench] 8. history: drain of {n} NOOP jobs into an empty database");
        let (empty_s, _) = self.drain_backlog(n, 0).await?;

        self.reset().await?;
        eprintln!(
            "[bench]    filling {} finished job records",
            group_digits(&history.to_string())
        );
        let fill = self.fill(history, true).await?;
        // The fill's writes are flushed before the timed drain, as in a deployment
        // whose history was written long ago.
        self.settle().await;
        let completed = self.count("COMPLETED").await?;
        eprintln!(
            "[bench]    filled in {:.1} s; drain of {n} NOOP jobs beside them",
            fill.seconds
        );
        let (history_s, _) = self.drain_backlog(n, completed).await?;

        let label = format!(
            "8. drain beside {} finished records",
            group_digits(&history.to_string())
        );
        report.throughput(
            "drain_empty",
            "8. drain into an empty database (baseline of 8)",
            n,
            empty_s,
            Target::None,
        );
        report.throughput("drain_history", &label, n, history_s, Target::None);
        report.ratio(
            "history",
            &label,
            "rate ÷ empty rate",
            empty_s / history_s,
            Target::AtLeast(FLAT_WITH_HISTORY),
        );
        report.extend(
            "history",
            serde_json::json!({ "records": history, "fill_seconds": fill.seconds }),
        );
        Ok(())
    }
}
