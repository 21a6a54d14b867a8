//! Caps on open job event streams: each holds a task and a share of the Redis
//! subscription until its client goes away, so one token (or all together) may
//! hold only so many (`api.max_streams_per_token`, `api.max_streams`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::auth::Caller;
use crate::error::ApiError;

/// The open streams of this process, by token.
#[derive(Debug)]
pub struct StreamLimits {
    per_token: usize,
    total: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_token: HashMap<Caller, usize>,
}

/// One open stream; dropping it (the stream ended or its client went away) frees
/// the slot.
#[derive(Debug)]
pub struct StreamPermit {
    limits: Arc<StreamLimits>,
    caller: Caller,
}

impl StreamLimits {
    pub fn new(per_token: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_token,
            total,
            open: Mutex::new(Open::default()),
        })
    }

    /// A slot for one more stream of `caller`, or 429 `too_many_streams`.
    pub fn acquire(self: &Arc<Self>, caller: &Caller) -> Result<StreamPermit, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.by_token.get(caller).copied().unwrap_or(0);
        if mine >= self.per_token {
            return Err(too_many(format!(
                "this token has {} event streams open, the most allowed (api.max_streams_per_token); close one first",
                self.per_token
            )));
        }
        if open.total >= self.total {
            return Err(too_many(format!(
                "the server has {} event streams open, the most allowed (api.max_streams); try again later",
                self.total
            )));
        }
        open.total += 1;
        *open.by_token.entry(caller.clone()).or_insert(0) += 1;
        Ok(StreamPermit {
            limits: self.clone(),
            caller: caller.clone(),
        })
    }

    /// Streams open now (all tokens).
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_token.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_token.remove(&self.caller);
            }
        }
    }
}

fn too_many(message: String) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_streams", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_token_and_in_all_and_freed_on_drop() {
        let limits = StreamLimits::new(2, 3);
        let (a, b) = (Caller::token("a"), Caller::token("b"));
        let a1 = limits.acquire(&a).unwrap();
        let _a2 = limits.acquire(&a).unwrap();
        assert_eq!(limits.acquire(&a).unwrap_err().code, "too_many_streams");
        let _b1 = limits.acquire(&b).unwrap();
        let err = limits.acquire(&b).unwrap_err();
        assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(err.message.contains("api.max_streams"), "{}", err.message);
        drop(a1);
        assert_eq!(limits.open(), 2);
        let _b2 = limits.acquire(&b).unwrap();
    }
}
