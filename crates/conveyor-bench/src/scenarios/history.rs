//! Scenario 8: the drain of scenario 2 into a database that already holds a long
//! history of finished jobs, against the same drain into an empty one. A deployment
//! keeps weeks of records, so the rate on an empty table is only the best case;
//! the target is that history costs the drain less than 10 %.

use std::time::Instant;

use anyhow::{Context, Result};
use queue_core::job::JobStatus;
use queue_core::store::DueRecords;

use crate::measure::PostgresCpu;
use crate::report::{group_digits, Report, Target};
use crate::setup::Bench;

/// The share of the empty-table rate the drain must keep with history.
const FLAT_WITH_HISTORY: f64 = 0.9;

/// The retention part prunes records that finished longer ago than this: about
/// half of the fill, whose finish times span 30 days.
const PRUNE_OLDER_THAN_S: u64 = 15 * 86_400;

/// What retention may cost, in percent of one core, to delete a day of history
/// written at the drain's rate.
const RETENTION_SHARE_OF_A_CORE: f64 = 5.0;

/// What pruning part of the history took.
pub(crate) struct Pruned {
    pub(crate) records: u64,
    pub(crate) seconds: f64,
    /// CPU seconds of every local PostgreSQL process: the deletions, their
    /// triggers, and the vacuum that reclaims what they left.
    pub(crate) postgres_cpu_s: f64,
    /// The vacuum's part of `postgres_cpu_s`.
    pub(crate) vacuum_cpu_s: f64,
}

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

        eprintln!("[bench]    retention: pruning the records finished over 15 days ago");
        let pruned = self.prune_history(&fill.queues).await?;
        report.retention(
            &pruned,
            n as f64 / history_s,
            Target::AtMost(RETENTION_SHARE_OF_A_CORE),
        );
        Ok(())
    }

    /// Prunes `queues`' records of every finished state finished more than
    /// [`PRUNE_OLDER_THAN_S`] ago as retention's pass does: the days past that age
    /// dropped with their partitions (`Store::drop_expired_history`), then the
    /// records due one by one (`Store::prune_batch`); then vacuums what the
    /// deletions left, counting PostgreSQL's CPU for all of it.
    async fn prune_history(&self, queues: &[String]) -> Result<Pruned> {
        let (cpu0, started) = (PostgresCpu::now(), Instant::now());
        let store = self.conveyor.store();
        let mut due = Vec::new();
        for queue in queues {
            for status in [
                JobStatus::Completed,
                JobStatus::Failed,
                JobStatus::Cancelled,
            ] {
                if let Some(cursor) = store
                    .prune_start(queue, status, PRUNE_OLDER_THAN_S, 0)
                    .await
                    .with_context(|| format!("pruning {queue} {status:?}"))?
                {
                    due.push(DueRecords {
                        queue: queue.clone(),
                        status,
                        cursor,
                    });
                }
            }
        }
        let dropped = store
            .drop_expired_history(&due, PRUNE_OLDER_THAN_S)
            .await
            .context("dropping the history's expired partitions")?;
        let mut records = dropped as u64;
        for d in &due {
            let mut cursor = Some(d.cursor);
            while let Some(from) = cursor {
                let (n, next) = store
                    .prune_batch(&d.queue, d.status, from)
                    .await
                    .with_context(|| format!("pruning {} {:?}", d.queue, d.status))?;
                records += n;
                cursor = next;
            }
        }
        let (deleting, vacuum0) = (cpu0.ticks_since(), PostgresCpu::now());
        for table in ["jobs", "job_executions"] {
            sqlx::query(&format!("VACUUM {table}"))
                .execute(&self.pool)
                .await
                .with_context(|| format!("vacuuming {table}"))?;
        }
        let vacuuming = vacuum0.ticks_since();
        Ok(Pruned {
            records,
            seconds: started.elapsed().as_secs_f64(),
            postgres_cpu_s: (deleting + vacuuming) as f64 / self.ticks,
            vacuum_cpu_s: vacuuming as f64 / self.ticks,
        })
    }
}
