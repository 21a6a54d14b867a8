//! `GET /api/admin/jobs/:id/events`: Server-Sent Events of a job's progress and
//! status until it is terminal.
//!
//! Order matters: subscribe first, then read the record and send its status, so an
//! event published between the two is not lost and a client that connects after
//! the job finished gets the terminal status at once. The record is read again
//! every [`RECHECK`] in case a change was not published (e.g. a lease recovery),
//! and at once when the shared subscription reports a gap (it reconnected). A
//! record that is gone (deleted) ends the stream. Every stream reads from the
//! process's one [`JobEventHub`](queue_core::broker::JobEventHub) subscription and
//! holds a slot of [`StreamLimits`](crate::streams::StreamLimits) until it ends or
//! its client goes away.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures::{Stream, StreamExt};
use queue_core::broker::{JobEvent, JobNotice};
use queue_core::job::{Job, JobStatus};
use queue_core::store::Store;
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, ReadErrors};
use crate::extract::{parse_id, ApiQuery, NoQuery};
use crate::AppState;

/// One server-sent event of the stream (the schema describes each event).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct JobEventFrame {
    event: JobEventName,
    /// JSON: `{status, attempts, error?}` for `status`, `{progress,
    /// progressMessage}` for `progress`.
    data: String,
}

/// The names of a job's events.
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum JobEventName {
    Status,
    Progress,
}

/// Keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often the record is read again while waiting for events.
const RECHECK: Duration = Duration::from_secs(5);

/// Streams `progress` (`{progress, progressMessage}`) and `status`
/// (`{status, attempts, error?}`) events; the first is the current status, the
/// last a terminal status, after which the stream ends. The stream also ends,
/// without a terminal status, when the job's record is deleted.
#[utoipa::path(get, path = "/api/admin/jobs/{id}/events", operation_id = "jobEvents", tag = "jobs", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The job id")),
    responses(
        (status = 200, description = "An event stream of `status` and `progress` events with JSON data", content_type = "text/event-stream", body = JobEventFrame),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 429, description = "Too many event streams open (`too_many_streams`): this token's (`api.max_streams_per_token`) or the server's (`api.max_streams`)", body = ErrorBody),
        ReadErrors
    ))]
pub async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_id(&id)?;
    let permit = state.streams.acquire(&caller)?;
    let mut subscription = state.events.subscribe(id).await?;
    let store = state.conveyor.store().clone();
    let job = store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))?;

    let (tx, mut rx) = mpsc::channel::<JobEvent>(16);
    tokio::spawn(async move {
        let mut last = current(&job);
        for event in last.clone() {
            if tx.send(event).await.is_err() {
                return;
            }
        }
        if job.status.is_terminal() {
            return;
        }
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        loop {
            let step = tokio::select! {
                notice = subscription.next() => match notice {
                    Some(JobNotice::Event(event)) => Step::Send(vec![event]),
                    Some(JobNotice::Gap) => reread(&store, id, &mut last).await,
                    // The hub is gone (shutdown): fall back to the record.
                    None => {
                        tokio::time::sleep(RECHECK).await;
                        reread(&store, id, &mut last).await
                    }
                },
                _ = recheck.tick() => reread(&store, id, &mut last).await,
                _ = tx.closed() => return,
            };
            let Step::Send(events) = step else {
                return;
            };
            for event in events {
                let terminal = event.is_terminal();
                if tx.send(event).await.is_err() || terminal {
                    return;
                }
            }
        }
    });
    // The permit lives as long as the body: it is freed when the client goes away.
    let stream = futures::stream::poll_fn(move |cx| {
        let _slot = &permit;
        rx.poll_recv(cx)
    })
    .map(|e| Ok(to_sse(&e)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// What a stream does next.
enum Step {
    /// Send these events (maybe none).
    Send(Vec<JobEvent>),
    /// The record is gone: end the stream.
    End,
}

/// `event: progress|status`, `data:` the event's JSON without its `type` tag.
fn to_sse(event: &JobEvent) -> Event {
    let name = match event {
        JobEvent::Progress { .. } => "progress",
        JobEvent::Status { .. } => "status",
    };
    let mut data = serde_json::to_value(event).unwrap_or_default();
    if let Some(fields) = data.as_object_mut() {
        fields.remove("type");
    }
    Event::default().event(name).data(data.to_string())
}

/// The events that describe the record now: its status, then its progress while
/// it runs.
fn current(job: &Job) -> Vec<JobEvent> {
    let mut events = vec![JobEvent::Status {
        status: job.status,
        attempts: job.attempts,
        error: job.error.clone(),
    }];
    if job.status == JobStatus::Running && job.progress > 0 {
        events.push(JobEvent::Progress {
            progress: job.progress,
            progress_message: job.progress_message.clone(),
        });
    }
    events
}

/// Reads the record again; returns its events when they differ from `last`.
async fn reread(store: &Store, id: uuid::Uuid, last: &mut Vec<JobEvent>) -> Step {
    match store.get_job(id).await {
        Ok(Some(job)) => {
            let now = current(&job);
            if now == *last {
                Step::Send(Vec::new())
            } else {
                *last = now.clone();
                Step::Send(now)
            }
        }
        Ok(None) => Step::End,
        Err(e) => {
            tracing::debug!(error = %e, job.id = %id, "event stream: record read failed");
            Step::Send(Vec::new())
        }
    }
}
