//! System routes: status (services, queues, processing rate, alerts), the metrics
//! summary, aggregated errors and the Prometheus `/metrics` of the API.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use queue_core::store::{ErrorGroup, QueueStats};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody, ReadErrors};
use crate::extract::{ApiQuery, NoQuery};
use crate::schemas::{ErrorGroupSchema, QueueStatsSchema};
use crate::AppState;

/// Alert thresholds (as in `config/prometheus/alerts.yml`): more waiting jobs than
/// this in a queue, more failures than this in the last hour.
const BACKLOG_WAITING: i64 = 1_000;
const FAILED_PER_HOUR: i64 = 100;
/// How long a service may take to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// A backing service: `up` with its ping latency, or `down`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// `up` or `down`.
    pub status: &'static str,
    /// Ping round trip; null when down.
    pub latency_ms: Option<f64>,
}

/// Completed attempts over the last minute.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessingRate {
    pub completed_last_minute: i64,
    pub per_second: f64,
}

/// An active alert (the rules of `config/prometheus/alerts.yml`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Alert {
    pub name: &'static str,
    /// `warning`, `error` or `critical`.
    pub severity: &'static str,
    pub message: String,
}

/// `GET /api/admin/system/status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemStatus {
    pub uptime_seconds: u64,
    pub version: &'static str,
    pub redis: ServiceStatus,
    pub postgres: ServiceStatus,
    /// Per configured queue (empty while PostgreSQL is down).
    #[schema(value_type = Vec<QueueStatsSchema>)]
    pub queues: Vec<QueueStats>,
    pub processing_rate: ProcessingRate,
    pub alerts: Vec<Alert>,
}

async fn ping<E>(f: impl std::future::Future<Output = Result<(), E>>) -> ServiceStatus {
    let started = Instant::now();
    match tokio::time::timeout(PING_TIMEOUT, f).await {
        Ok(Ok(())) => ServiceStatus {
            status: "up",
            latency_ms: Some((started.elapsed().as_secs_f64() * 1e5).round() / 100.0),
        },
        _ => ServiceStatus {
            status: "down",
            latency_ms: None,
        },
    }
}

/// The alerts of the three rules of `config/prometheus/alerts.yml` (a backlog, a
/// stalled queue, many failures) over the queue figures and the recent failures.
pub fn alerts(queues: &[QueueStats], failed_last_hour: i64) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for q in queues {
        if q.waiting > BACKLOG_WAITING {
            alerts.push(Alert {
                name: "ConveyorQueueBacklog",
                severity: "warning",
                message: format!(
                    "queue {} has {} waiting jobs (more than {BACKLOG_WAITING})",
                    q.queue, q.waiting
                ),
            });
        }
        if q.active == 0 && q.waiting > 0 && !q.paused {
            alerts.push(Alert {
                name: "ConveyorQueueStalled",
                severity: "error",
                message: format!(
                    "queue {} has {} waiting jobs and none running",
                    q.queue, q.waiting
                ),
            });
        }
    }
    if failed_last_hour > FAILED_PER_HOUR {
        alerts.push(Alert {
            name: "ConveyorJobsFailing",
            severity: "critical",
            message: format!(
                "{failed_last_hour} jobs failed in the last hour (more than {FAILED_PER_HOUR})"
            ),
        });
    }
    alerts
}

/// Uptime, version, Redis and PostgreSQL status, per-queue figures, processing
/// rate and active alerts.
#[utoipa::path(get, path = "/api/admin/system/status", operation_id = "systemStatus", tag = "system", security(("bearer" = [])),
    responses(
        (status = 200, description = "The system's status", body = SystemStatus),
        ReadErrors
    ))]
pub async fn status(
    State(state): State<AppState>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<SystemStatus>, ApiError> {
    let c = &state.conveyor;
    let (postgres, redis) = tokio::join!(ping(c.store().ping()), ping(c.broker().ping()));
    let mut queues = Vec::new();
    let mut completed_last_minute = 0;
    let mut alerts_now = Vec::new();
    if postgres.status == "up" {
        let names = state.queue_names();
        let store = c.store();
        let (stats, completed, failed) = tokio::try_join!(
            store.queue_stats(&names),
            store.completed_within(60),
            store.failed_within(3_600)
        )?;
        alerts_now = alerts(&stats, failed);
        queues = stats;
        completed_last_minute = completed;
    }
    for (name, service) in [("postgres", &postgres), ("redis", &redis)] {
        if service.status != "up" {
            alerts_now.push(Alert {
                name: "ConveyorServiceDown",
                severity: "critical",
                message: format!("{name} does not answer"),
            });
        }
    }
    Ok(Json(SystemStatus {
        uptime_seconds: state.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION"),
        redis,
        postgres,
        queues,
        processing_rate: ProcessingRate {
            completed_last_minute,
            per_second: (completed_last_minute as f64 / 60.0 * 100.0).round() / 100.0,
        },
        alerts: alerts_now,
    }))
}

/// `GET /api/admin/metrics/summary`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSummary {
    /// Job records in every state.
    pub total_jobs: i64,
    pub completed_jobs: i64,
    pub failed_jobs: i64,
    /// completed / (completed + failed), 0 to 1 (0 when none finished).
    pub success_rate: f64,
    /// Mean duration of attempts completed in the last 24 h (0 when none).
    pub average_processing_time_ms: f64,
}

/// Job totals, success rate and the mean processing time of the last 24 hours.
#[utoipa::path(get, path = "/api/admin/metrics/summary", operation_id = "metricsSummary", tag = "system", security(("bearer" = [])),
    responses(
        (status = 200, description = "Totals over every queue", body = MetricsSummary),
        ReadErrors
    ))]
pub async fn summary(
    State(state): State<AppState>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<MetricsSummary>, ApiError> {
    let names = state.queue_names();
    let store = state.conveyor.store();
    let (stats, average) = tokio::try_join!(
        store.queue_stats(&names),
        store.average_completed_ms(24 * 3_600)
    )?;
    let (mut total, mut completed, mut failed) = (0, 0, 0);
    for q in &stats {
        total +=
            q.waiting + q.active + q.delayed + q.retrying + q.completed + q.failed + q.cancelled;
        completed += q.completed;
        failed += q.failed;
    }
    let finished = completed + failed;
    Ok(Json(MetricsSummary {
        total_jobs: total,
        completed_jobs: completed,
        failed_jobs: failed,
        success_rate: if finished == 0 {
            0.0
        } else {
            completed as f64 / finished as f64
        },
        average_processing_time_ms: (average.unwrap_or(0.0) * 100.0).round() / 100.0,
    }))
}

/// Query of `GET /api/admin/errors`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ErrorsQuery {
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

const DEFAULT_ERRORS: i64 = 50;
const MAX_ERRORS: i64 = 100;

/// Errors of failed attempts grouped by job type and message, the most recently
/// seen first. Only the most recent 5 000 attempts that did not complete (FAILED,
/// LOST or CANCELLED) are aggregated, so the answer stays fast whatever the size
/// of the attempt log; `count`, `firstOccurredAt` and `lastOccurredAt` are over
/// those attempts.
#[utoipa::path(get, path = "/api/admin/errors", operation_id = "listErrors", tag = "system", security(("bearer" = [])),
    params(ErrorsQuery),
    responses(
        (status = 200, description = "Error groups over the most recent 5 000 unsuccessful attempts, most recent first", body = Vec<ErrorGroupSchema>),
        ReadErrors
    ))]
pub async fn errors(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ErrorsQuery>,
) -> Result<Json<Vec<ErrorGroup>>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_ERRORS);
    if !(1..=MAX_ERRORS).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_ERRORS}"),
        ));
    }
    Ok(Json(state.conveyor.store().error_groups(limit).await?))
}

/// The API's Prometheus metrics: its counters plus `conveyor_queue_jobs{queue,
/// state}` refreshed from the queue stats on each scrape.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorBody)
    ))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let names = state.queue_names();
    let stats = state.conveyor.store().queue_stats(&names).await?;
    let gauge = &state.metrics.queue_jobs;
    for q in &stats {
        for (name, n) in [
            ("waiting", q.waiting),
            ("active", q.active),
            ("delayed", q.delayed),
            ("failed", q.failed),
        ] {
            gauge.with_label_values(&[q.queue.as_str(), name]).set(n);
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(waiting: i64, active: i64, paused: bool) -> QueueStats {
        QueueStats {
            queue: "q".into(),
            paused,
            waiting,
            active,
            ..QueueStats::default()
        }
    }

    #[test]
    fn the_three_alert_rules() {
        assert!(alerts(&[queue(0, 0, false)], 100).is_empty());
        let names = |a: Vec<Alert>| a.into_iter().map(|a| a.name).collect::<Vec<_>>();
        assert_eq!(
            names(alerts(&[queue(1_001, 3, false)], 0)),
            ["ConveyorQueueBacklog"]
        );
        assert_eq!(
            names(alerts(&[queue(5, 0, false)], 101)),
            ["ConveyorQueueStalled", "ConveyorJobsFailing"]
        );
        // A paused queue is expected to wait.
        assert!(alerts(&[queue(5, 0, true)], 0).is_empty());
    }
}
