//! What the maintenance loop and the heartbeat do in Redis: leases, the checks of
//! waiting jobs, the generation marker that reveals a flush, pause flags and the
//! worker registry.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::{evalsha, keys, scripts, Broker, QueueKeys, PUSH_CHUNK};
use crate::error::BrokerError;

impl Broker {
    /// Drops leases of ids the PostgreSQL claim refused.
    pub async fn drop_leases(&self, queue: &str, ids: &[Uuid]) -> Result<(), BrokerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let members: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("ZREM")
            .arg(self.keys(queue).inflight)
            .arg(members)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Puts back ids the PostgreSQL claim refused although their jobs still wait
    /// (Redis promoted them before PostgreSQL's clock says they are due): each is
    /// dropped from the in-flight set and pushed again to run `wait` later, counted
    /// by Redis's clock, so a skew between the two clocks costs one refusal per
    /// job, not a loop.
    pub async fn requeue_refused(
        &self,
        queue: &str,
        waiting: &[(Uuid, i32, Duration)],
    ) -> Result<(), BrokerError> {
        if waiting.is_empty() {
            return Ok(());
        }
        let k = self.keys(queue);
        let mut pipe = redis::pipe();
        let members: Vec<String> = waiting.iter().map(|(id, _, _)| id.to_string()).collect();
        pipe.cmd("ZREM").arg(&k.inflight).arg(&members).ignore();
        pipe.add_command(self.audit_cmd(&k, "put", waiting))
            .ignore();
        self.run_pipeline(&pipe).await
    }

    /// Those of `waiting` (waiting jobs by PostgreSQL) that are nowhere in the
    /// queue's keys: not ready, delayed or in flight.
    pub async fn missing(
        &self,
        queue: &str,
        waiting: &[(Uuid, i32, Duration)],
    ) -> Result<Vec<Uuid>, BrokerError> {
        if waiting.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.keys(queue);
        let mut pipe = redis::pipe();
        for chunk in waiting.chunks(PUSH_CHUNK) {
            pipe.add_command(self.audit_cmd(&k, "find", chunk));
        }
        let found: Vec<Vec<String>> = self.query_pipeline(&pipe).await?;
        Ok(found
            .iter()
            .flatten()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect())
    }

    /// Puts back those of `waiting` that are nowhere in the queue's keys (each
    /// checked again, atomically, as it is put back). Returns how many were.
    pub async fn put_back(
        &self,
        queue: &str,
        waiting: &[(Uuid, i32, Duration)],
    ) -> Result<u64, BrokerError> {
        if waiting.is_empty() {
            return Ok(0);
        }
        let k = self.keys(queue);
        let mut pipe = redis::pipe();
        for chunk in waiting.chunks(PUSH_CHUNK) {
            pipe.add_command(self.audit_cmd(&k, "put", chunk));
        }
        let put_back: Vec<u64> = self.query_pipeline(&pipe).await?;
        Ok(put_back.iter().sum())
    }

    fn audit_cmd(
        &self,
        k: &QueueKeys,
        mode: &str,
        waiting: &[(Uuid, i32, Duration)],
    ) -> redis::Cmd {
        let mut cmd = evalsha(
            &scripts::AUDIT,
            &[&k.ready, &k.delayed, &k.inflight, &k.seq, &k.marker],
        );
        cmd.arg(mode);
        for (id, priority, wait) in waiting {
            cmd.arg(id.to_string())
                .arg(priority)
                .arg(wait.as_millis() as u64);
        }
        cmd
    }

    /// Extends the leases of ids still held by a live worker.
    pub async fn renew_leases(
        &self,
        leases: &BTreeMap<String, Vec<Uuid>>,
        lease: Duration,
    ) -> Result<(), BrokerError> {
        let deadline = Utc::now().timestamp_millis() + lease.as_millis() as i64;
        let mut pipe = redis::pipe();
        for (queue, ids) in leases.iter().filter(|(_, ids)| !ids.is_empty()) {
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(self.keys(queue).inflight).arg("XX");
            for id in ids {
                cmd.arg(deadline).arg(id.to_string());
            }
            pipe.add_command(cmd).ignore();
        }
        self.run_pipeline(&pipe).await
    }

    /// Sets or clears the pause flag; resuming wakes a blocked worker.
    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), BrokerError> {
        let k = self.keys(queue);
        let mut pipe = redis::pipe();
        if paused {
            pipe.set(&k.paused, 1).ignore();
        } else {
            pipe.del(&k.paused)
                .ignore()
                .zadd(&k.marker, "0", 0)
                .ignore();
        }
        self.run_pipeline(&pipe).await
    }

    /// Records a live worker for `ttl`.
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        info: &str,
        ttl: Duration,
    ) -> Result<(), BrokerError> {
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(keys::worker_key(&self.prefix, worker_id))
            .arg(info)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn remove_worker(&self, worker_id: &str) -> Result<(), BrokerError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(keys::worker_key(&self.prefix, worker_id))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Claims the queue's generation marker. Returns true when it was missing, i.e.
    /// Redis lost this queue's keys (flush, restart) or never had them.
    pub async fn claim_generation(
        &self,
        queue: &str,
        generation: &str,
    ) -> Result<bool, BrokerError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}:{{{queue}}}:generation", self.prefix))
            .arg(generation)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    /// Gives the generation marker back, so the next round tries the queue's
    /// re-dispatch again (it could not be recorded in PostgreSQL).
    pub async fn release_generation(&self, queue: &str) -> Result<(), BrokerError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{}:{{{queue}}}:generation", self.prefix))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Up to `limit` in-flight ids whose lease ran out.
    pub async fn expired_leases(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<Uuid>, BrokerError> {
        let k = self.keys(queue);
        let now = Utc::now().timestamp_millis();
        let mut conn = self.conn.clone();
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&k.inflight)
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        Ok(members
            .iter()
            .filter_map(|m| Uuid::parse_str(m).ok())
            .collect())
    }

    /// Makes Redis's pause flags match PostgreSQL's for `queues`.
    pub async fn sync_paused(
        &self,
        queues: &[String],
        paused: &[String],
    ) -> Result<(), BrokerError> {
        let mut pipe = redis::pipe();
        for q in queues {
            let k = self.keys(q);
            if paused.contains(q) {
                pipe.set(&k.paused, 1).ignore();
            } else {
                pipe.del(&k.paused).ignore();
            }
        }
        self.run_pipeline(&pipe).await
    }
}
