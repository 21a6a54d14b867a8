//! One method per admin API call.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::wire::*;
use super::{classify, CancelOutcome, Client, ClientError, Reply};

impl Client {
    /// `POST /api/admin/jobs` (201 created, 200 when the idempotency key matched).
    pub async fn create_job(&self, job: &NewJob) -> Result<Reply<Job>, ClientError> {
        let body = serde_json::to_value(job).expect("a job serializes");
        self.call(Method::POST, self.admin(&["jobs"]), Some(&body))
            .await
    }

    /// `GET /api/admin/jobs/:id`.
    pub async fn get_job(&self, id: &str) -> Result<Reply<JobDetail>, ClientError> {
        self.call(Method::GET, self.admin(&["jobs", id]), None)
            .await
    }

    /// `GET /api/admin/jobs?…`.
    pub async fn list_jobs(&self, filter: &ListFilter) -> Result<Reply<JobPage>, ClientError> {
        let mut url = self.admin(&["jobs"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(v) = &filter.queue {
                q.append_pair("queue", v);
            }
            if let Some(v) = &filter.status {
                q.append_pair("status", v);
            }
            if let Some(v) = &filter.job_type {
                q.append_pair("jobType", v);
            }
            if let Some(v) = filter.page {
                q.append_pair("page", &v.to_string());
            }
            if let Some(v) = filter.limit {
                q.append_pair("limit", &v.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.call(Method::GET, url, None).await
    }

    /// `POST /api/admin/jobs/:id/retry`.
    pub async fn retry_job(&self, id: &str) -> Result<Reply<Job>, ClientError> {
        self.call(Method::POST, self.admin(&["jobs", id, "retry"]), None)
            .await
    }

    /// `DELETE /api/admin/jobs/:id`.
    pub async fn cancel_job(&self, id: &str) -> Result<CancelOutcome, ClientError> {
        let url = self.admin(&["jobs", id]);
        let path = url.path().to_string();
        let (status, raw) = self.send(Method::DELETE, url, None).await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(CancelOutcome::Deleted);
        }
        let value: Job = serde_json::from_value(raw.clone()).map_err(|e| ClientError::Decode {
            path,
            reason: e.to_string(),
        })?;
        let reply = Reply {
            status: status.as_u16(),
            raw,
            value,
        };
        Ok(if status == StatusCode::ACCEPTED {
            CancelOutcome::Requested(reply)
        } else {
            CancelOutcome::Cancelled(reply)
        })
    }

    /// `GET /api/admin/queues`.
    pub async fn queues(&self) -> Result<Reply<Vec<QueueStats>>, ClientError> {
        self.call(Method::GET, self.admin(&["queues"]), None).await
    }

    /// `GET /api/admin/jobs/queue/:name/stats`.
    pub async fn queue_stats(&self, queue: &str) -> Result<Reply<QueueStats>, ClientError> {
        self.call(
            Method::GET,
            self.admin(&["jobs", "queue", queue, "stats"]),
            None,
        )
        .await
    }

    /// `POST /api/admin/jobs/queue/:name/pause` or `/resume`.
    pub async fn set_paused(
        &self,
        queue: &str,
        paused: bool,
    ) -> Result<Reply<Paused>, ClientError> {
        let action = if paused { "pause" } else { "resume" };
        self.call(
            Method::POST,
            self.admin(&["jobs", "queue", queue, action]),
            None,
        )
        .await
    }

    /// `POST /api/admin/jobs/queue/:name/clean`.
    pub async fn clean(
        &self,
        queue: &str,
        req: &CleanRequest,
    ) -> Result<Reply<Cleaned>, ClientError> {
        let body = serde_json::to_value(req).expect("a clean request serializes");
        self.call(
            Method::POST,
            self.admin(&["jobs", "queue", queue, "clean"]),
            Some(&body),
        )
        .await
    }

    /// `GET /api/admin/dlq/:queue`.
    pub async fn dead_letters(
        &self,
        queue: &str,
        limit: Option<u64>,
    ) -> Result<Reply<Vec<DeadLetter>>, ClientError> {
        let mut url = self.admin(&["dlq", queue]);
        if let Some(limit) = limit {
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
        }
        self.call(Method::GET, url, None).await
    }

    /// `POST /api/admin/dlq/:queue/replay` (every dead letter when `job_ids` is empty).
    pub async fn replay(
        &self,
        queue: &str,
        job_ids: &[String],
    ) -> Result<Reply<Replayed>, ClientError> {
        let body = if job_ids.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::json!({ "jobIds": job_ids })
        };
        self.call(
            Method::POST,
            self.admin(&["dlq", queue, "replay"]),
            Some(&body),
        )
        .await
    }

    /// `GET /api/admin/scheduled-jobs`.
    pub async fn schedules(&self) -> Result<Reply<Vec<Value>>, ClientError> {
        self.call(Method::GET, self.admin(&["scheduled-jobs"]), None)
            .await
    }

    /// `POST /api/admin/scheduled-jobs`.
    pub async fn create_schedule(&self, body: &Value) -> Result<Reply<Value>, ClientError> {
        self.call(Method::POST, self.admin(&["scheduled-jobs"]), Some(body))
            .await
    }

    /// `GET /api/admin/scheduled-jobs/:id`.
    pub async fn get_schedule(&self, id: &str) -> Result<Reply<Value>, ClientError> {
        self.call(Method::GET, self.admin(&["scheduled-jobs", id]), None)
            .await
    }

    /// `PATCH /api/admin/scheduled-jobs/:id`.
    pub async fn update_schedule(
        &self,
        id: &str,
        body: &Value,
    ) -> Result<Reply<Value>, ClientError> {
        self.call(
            Method::PATCH,
            self.admin(&["scheduled-jobs", id]),
            Some(body),
        )
        .await
    }

    /// `DELETE /api/admin/scheduled-jobs/:id` (204).
    pub async fn delete_schedule(&self, id: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, self.admin(&["scheduled-jobs", id]), None)
            .await
            .map(|_| ())
    }

    /// `POST /api/admin/scheduled-jobs/:id/trigger`: the job enqueued.
    pub async fn trigger_schedule(&self, id: &str) -> Result<Reply<Job>, ClientError> {
        self.call(
            Method::POST,
            self.admin(&["scheduled-jobs", id, "trigger"]),
            None,
        )
        .await
    }

    /// `GET /api/admin/{authors|books|quotes}?…`; `query` holds the filters given.
    pub async fn list_page(
        &self,
        resource: &str,
        query: &[(&str, String)],
    ) -> Result<Reply<Page>, ClientError> {
        let mut url = self.admin(&[resource]);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.call(Method::GET, url, None).await
    }

    /// `GET /api/admin/{authors|books|quotes}/:id`.
    pub async fn get_one(&self, resource: &str, id: &str) -> Result<Reply<Value>, ClientError> {
        self.call(Method::GET, self.admin(&[resource, id]), None)
            .await
    }

    /// `POST /api/admin/authors`.
    pub async fn create_author(&self, body: &Value) -> Result<Reply<Value>, ClientError> {
        self.call(Method::POST, self.admin(&["authors"]), Some(body))
            .await
    }

    /// `GET /api/admin/workers`.
    pub async fn workers(&self) -> Result<Reply<Vec<Worker>>, ClientError> {
        self.call(Method::GET, self.admin(&["workers"]), None).await
    }

    /// `GET /health`: 200 healthy or 503 unhealthy, both with a JSON body; answers
    /// the status and the body either way (any other answer is an error).
    pub async fn health(&self) -> Result<(u16, Value), ClientError> {
        let url = self.url(&["health"]);
        let (status, raw, bytes) = self.exchange(Method::GET, url, None).await?;
        match (status.as_u16(), raw) {
            (200 | 503, Some(raw)) => Ok((status.as_u16(), raw)),
            (s, _) if s < 300 => Err(ClientError::Decode {
                path: "/health".into(),
                reason: "the body is not JSON".into(),
            }),
            (_, raw) => Err(classify(status, raw.as_ref(), &bytes)),
        }
    }

    /// `GET /api/admin/system/status`; `None` when the API does not serve it (404).
    pub async fn system_status(&self) -> Result<Option<Value>, ClientError> {
        match self
            .send(Method::GET, self.admin(&["system", "status"]), None)
            .await
        {
            Ok((_, raw)) => Ok(Some(raw)),
            Err(ClientError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
