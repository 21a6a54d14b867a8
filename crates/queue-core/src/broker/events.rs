//! A job's progress and status events over Redis pub/sub (channel
//! [`keys::job_events_channel`]). Workers publish after the change is in
//! PostgreSQL, one pipeline per batch; the API's SSE route reads them through a
//! [`JobEventHub`], one connection per process. Events are advisory: a reader
//! subscribes before it reads the record, so it misses nothing that matters, and a
//! lost event is covered by the next one or the record.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
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
/// Notices buffered per job; a reader further behind gets [`JobNotice::Gap`].
const TOPIC_CAPACITY: usize = 64;
/// Channels named per SUBSCRIBE when resubscribing after a reconnect.
const RESUBSCRIBE_CHUNK: usize = 1_000;
/// Wait before reconnecting, doubled after each failure up to the maximum.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

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
        self.add_job_events(&mut pipe, events)?;
        self.run_pipeline(&pipe).await
    }

    /// Adds one PUBLISH per event to `pipe`.
    pub(super) fn add_job_events(
        &self,
        pipe: &mut redis::Pipeline,
        events: &[(Uuid, JobEvent)],
    ) -> Result<(), BrokerError> {
        for (id, event) in events {
            let payload =
                serde_json::to_string(event).map_err(|e| BrokerError::Protocol(e.to_string()))?;
            pipe.publish(keys::job_events_channel(&self.prefix, id), payload)
                .ignore();
        }
        Ok(())
    }
}

/// What a subscription hands its reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobNotice {
    /// An event as published.
    Event(JobEvent),
    /// Events may have been lost (the shared connection came back after a drop, or
    /// the reader fell behind): read the record again.
    Gap,
}

/// One Redis pub/sub connection shared by every job event reader of a process.
/// It holds one SUBSCRIBE per job that has readers and fans each message out to
/// them; it connects on first use and, after a drop, reconnects, subscribes again
/// and tells every reader of the gap. Cheap to clone.
#[derive(Clone)]
pub struct JobEventHub {
    commands: mpsc::UnboundedSender<Command>,
    connected: watch::Receiver<bool>,
    /// The task until it is started (it needs a runtime).
    start: Arc<Mutex<Option<HubTask>>>,
}

/// A reader of one job's events. Dropping it unsubscribes (the last reader of a
/// job takes its channel off the connection).
pub struct JobEventSubscription {
    id: Uuid,
    rx: broadcast::Receiver<JobNotice>,
    commands: mpsc::UnboundedSender<Command>,
}

enum Command {
    Subscribe {
        id: Uuid,
        reply: oneshot::Sender<broadcast::Receiver<JobNotice>>,
    },
    Unsubscribe {
        id: Uuid,
    },
}

impl JobEventHub {
    /// A hub on `broker`'s Redis and key prefix; nothing connects until the first
    /// subscription.
    pub fn new(broker: &Broker) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let (connected_tx, connected) = watch::channel(false);
        let task = HubTask {
            client: broker.client.clone(),
            channel_prefix: keys::job_events_channel_prefix(&broker.prefix),
            commands: rx,
            connected: connected_tx,
            topics: HashMap::new(),
        };
        Self {
            commands,
            connected,
            start: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Subscribes to job `id`'s events; the subscription is active when this
    /// returns, so a record read afterwards misses nothing. Fails when the shared
    /// connection is not up within 2 s.
    pub async fn subscribe(&self, id: Uuid) -> Result<JobEventSubscription, BrokerError> {
        let task = self.start.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            tokio::spawn(task.run());
        }
        let subscribe = async {
            let mut connected = self.connected.clone();
            connected
                .wait_for(|up| *up)
                .await
                .map_err(|_| BrokerError::Unavailable)?;
            let (reply, answer) = oneshot::channel();
            self.commands
                .send(Command::Subscribe { id, reply })
                .map_err(|_| BrokerError::Unavailable)?;
            answer.await.map_err(|_| BrokerError::Unavailable)
        };
        let rx = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribe)
            .await
            .map_err(|_| BrokerError::Unavailable)??;
        Ok(JobEventSubscription {
            id,
            rx,
            commands: self.commands.clone(),
        })
    }
}

impl JobEventSubscription {
    /// The next notice; None once the hub is gone.
    pub async fn next(&mut self) -> Option<JobNotice> {
        match self.rx.recv().await {
            Ok(notice) => Some(notice),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(JobNotice::Gap),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for JobEventSubscription {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Unsubscribe { id: self.id });
    }
}

/// The readers of one job.
struct Topic {
    tx: broadcast::Sender<JobNotice>,
    readers: usize,
}

/// Owns the connection and the topics; runs while a hub or a subscription lives.
struct HubTask {
    client: Client,
    /// `{prefix}:events:`, followed by the job id in each channel name.
    channel_prefix: String,
    commands: mpsc::UnboundedReceiver<Command>,
    connected: watch::Sender<bool>,
    topics: HashMap<Uuid, Topic>,
}

/// Why serving a connection stopped.
enum Served {
    /// No hub and no subscription is left.
    Finished,
    /// The connection dropped or a command on it failed.
    Dropped,
}

impl HubTask {
    async fn run(mut self) {
        let mut backoff = RECONNECT_MIN;
        loop {
            match self.connect().await {
                Ok((sink, stream)) => {
                    backoff = RECONNECT_MIN;
                    self.connected.send_replace(true);
                    // Readers may have missed events while the connection was down.
                    self.notify_all(JobNotice::Gap);
                    let served = self.serve(sink, stream).await;
                    self.connected.send_replace(false);
                    match served {
                        Served::Finished => return,
                        Served::Dropped => {
                            tracing::warn!(
                                "job events: redis pub/sub connection lost; reconnecting"
                            )
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "job events: cannot connect to redis"),
            }
            if !self.wait(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(RECONNECT_MAX);
        }
    }

    /// Opens the connection and subscribes to the channels of every topic.
    async fn connect(&self) -> Result<(PubSubSink, PubSubStream), BrokerError> {
        let connect = async {
            let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
            let channels: Vec<String> = self.topics.keys().map(|id| self.channel(id)).collect();
            for chunk in channels.chunks(RESUBSCRIBE_CHUNK) {
                sink.subscribe(chunk).await?;
            }
            Ok::<_, redis::RedisError>((sink, stream))
        };
        Ok(tokio::time::timeout(SUBSCRIBE_TIMEOUT, connect)
            .await
            .map_err(|_| BrokerError::Unavailable)??)
    }

    /// Serves commands and messages until the connection drops or nobody is left.
    async fn serve(&mut self, mut sink: PubSubSink, mut stream: PubSubStream) -> Served {
        loop {
            tokio::select! {
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        return Served::Finished;
                    };
                    if let Err(e) = self.apply(command, Some(&mut sink)).await {
                        tracing::debug!(error = %e, "job events: subscription change failed");
                        return Served::Dropped;
                    }
                }
                message = stream.next() => match message {
                    Some(message) => self.dispatch(&message),
                    None => return Served::Dropped,
                },
            }
        }
    }

    /// Waits `pause` before the next connection attempt, keeping the topics up to
    /// date meanwhile. False when nobody is left.
    async fn wait(&mut self, pause: Duration) -> bool {
        let until = tokio::time::Instant::now() + pause;
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    // Without a connection this cannot fail.
                    Some(command) => { let _ = self.apply(command, None).await; }
                    None => return false,
                },
                _ = tokio::time::sleep_until(until) => return true,
            }
        }
    }

    /// Adds or removes a reader; the first reader of a job subscribes its channel
    /// (before the reader is answered) and the last one unsubscribes it.
    async fn apply(
        &mut self,
        command: Command,
        sink: Option<&mut PubSubSink>,
    ) -> Result<(), BrokerError> {
        match command {
            Command::Subscribe { id, reply } => {
                let topic = self.topics.entry(id).or_insert_with(|| Topic {
                    tx: broadcast::channel(TOPIC_CAPACITY).0,
                    readers: 0,
                });
                topic.readers += 1;
                let first = topic.readers == 1;
                let rx = topic.tx.subscribe();
                let mut result = Ok(());
                if let (true, Some(sink)) = (first, sink) {
                    result = on_time(sink.subscribe(self.channel(&id))).await;
                }
                // A caller that gave up (timeout, client gone) leaves no reader.
                if reply.send(rx).is_err() {
                    self.release(id);
                }
                result
            }
            Command::Unsubscribe { id } => match (self.release(id), sink) {
                (true, Some(sink)) => on_time(sink.unsubscribe(self.channel(&id))).await,
                _ => Ok(()),
            },
        }
    }

    /// Drops one reader of `id`; true when it was the last.
    fn release(&mut self, id: Uuid) -> bool {
        let Some(topic) = self.topics.get_mut(&id) else {
            return false;
        };
        topic.readers = topic.readers.saturating_sub(1);
        if topic.readers > 0 {
            return false;
        }
        self.topics.remove(&id);
        true
    }

    fn dispatch(&self, message: &redis::Msg) {
        let Some(id) = message
            .get_channel_name()
            .strip_prefix(self.channel_prefix.as_str())
            .and_then(|id| Uuid::parse_str(id).ok())
        else {
            return;
        };
        let Some(topic) = self.topics.get(&id) else {
            return;
        };
        // Payloads that do not parse are skipped: events are advisory.
        let event = message
            .get_payload::<String>()
            .ok()
            .and_then(|payload| serde_json::from_str(&payload).ok());
        if let Some(event) = event {
            let _ = topic.tx.send(JobNotice::Event(event));
        }
    }

    fn notify_all(&self, notice: JobNotice) {
        for topic in self.topics.values() {
            let _ = topic.tx.send(notice.clone());
        }
    }

    fn channel(&self, id: &Uuid) -> String {
        format!("{}{id}", self.channel_prefix)
    }
}

/// A subscription change, bounded in time like opening one.
async fn on_time(
    change: impl std::future::Future<Output = redis::RedisResult<()>>,
) -> Result<(), BrokerError> {
    Ok(tokio::time::timeout(SUBSCRIBE_TIMEOUT, change)
        .await
        .map_err(|_| BrokerError::Unavailable)??)
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
