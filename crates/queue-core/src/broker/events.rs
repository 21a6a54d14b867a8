//! A job's progress and status events over Redis pub/sub (channel
//! [`keys::job_events_channel`]). Workers publish after the change is in
//! PostgreSQL, one pipeline per batch; the API's SSE route subscribes. Events are
//! advisory: a subscriber reads the record after subscribing, so it misses nothing
//! that matters, and a lost event is covered by the next one or the record.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{keys, Broker};
use crate::error::BrokerError;
use crate::job::JobStatus;

/// One event of a job, as published (JSON with a `type` tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum JobEvent {
    /// `{"type":"progress","progress":50,"progressMessage":"step 2/4"}`.
    #[serde(rename_all = "camelCase")]
    Progress {
        progress: i16,
        progress_message: Option<String>,
    },
    /// `{"type":"status","status":"COMPLETED","attempts":1}` (`error` when there is one).
    #[serde(rename_all = "camelCase")]
    Status {
        status: JobStatus,
        attempts: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl JobEvent {
    /// A status event that ends the job's stream.
    pub fn is_terminal(&self) -> bool {
        matches!(self, JobEvent::Status { status, .. } if status.is_terminal())
    }
}

/// How long opening a subscription may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Broker {
    /// Publishes `events` in one pipeline (one PUBLISH each).
    pub async fn publish_job_events(&self, events: &[(Uuid, JobEvent)]) -> Result<(), BrokerError> {
        if events.is_empty() {
            return Ok(());
        }
        // Fail fast while Redis was just found down: events are advisory and the
        // callers (claim, completer) must not wait on them.
        if Utc::now().timestamp_millis() < self.open_until_ms.load(Ordering::Relaxed) {
            return Err(BrokerError::Unavailable);
        }
        let mut pipe = redis::pipe();
        for (id, event) in events {
            let payload =
                serde_json::to_string(event).map_err(|e| BrokerError::Protocol(e.to_string()))?;
            pipe.publish(keys::job_events_channel(&self.prefix, id), payload)
                .ignore();
        }
        self.run_pipeline(&pipe).await
    }

    /// Subscribes to job `id`'s events on a pub/sub connection of its own; the
    /// subscription is active when this returns. Payloads that do not parse are
    /// skipped. The stream ends when the connection drops.
    pub async fn subscribe_job_events(
        &self,
        id: Uuid,
    ) -> Result<BoxStream<'static, JobEvent>, BrokerError> {
        let channel = keys::job_events_channel(&self.prefix, &id);
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribe)
            .await
            .map_err(|_| BrokerError::Unavailable)??;
        Ok(pubsub
            .into_on_message()
            .filter_map(|msg| async move {
                let payload: String = msg.get_payload().ok()?;
                serde_json::from_str(&payload).ok()
            })
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_type_tag_in_camel_case() {
        let p = JobEvent::Progress {
            progress: 50,
            progress_message: Some("half".into()),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"type":"progress","progress":50,"progressMessage":"half"}"#
        );
        let s = JobEvent::Status {
            status: JobStatus::Completed,
            attempts: 1,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"type":"status","status":"COMPLETED","attempts":1}"#
        );
        assert!(s.is_terminal());
        let back: JobEvent = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
