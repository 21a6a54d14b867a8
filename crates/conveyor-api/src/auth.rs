//! Bearer-token auth: admin tokens may do everything, viewer tokens only GET.
//! Tokens are compared in constant time and never logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

/// Who may call the admin routes.
#[derive(Debug, Clone)]
pub enum Auth {
    Tokens {
        admin: Vec<String>,
        viewer: Vec<String>,
    },
    /// `--insecure-no-auth`: every request is an admin.
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
}

impl Auth {
    /// Role of a presented token, if it is one of ours.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let Auth::Tokens { admin, viewer } = self else {
            return Some(Role::Admin);
        };
        let matches = |tokens: &[String]| {
            // Check every token so timing does not reveal which one matched.
            tokens.iter().fold(false, |acc, t| {
                acc | bool::from(t.as_bytes().ct_eq(presented.as_bytes()))
            })
        };
        if matches(admin) {
            Some(Role::Admin)
        } else if matches(viewer) {
            Some(Role::Viewer)
        } else {
            None
        }
    }
}

/// Who sent a request (a request extension set by [`require_token`]), for
/// per-token limits. Its Debug output does not show the token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Caller(Option<Arc<str>>);

impl Caller {
    pub fn token(token: &str) -> Self {
        Self(Some(Arc::from(token)))
    }
    /// Every request when auth is disabled.
    pub fn anonymous() -> Self {
        Self(None)
    }
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Caller(<token>)"
        } else {
            "Caller(anonymous)"
        })
    }
}

pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if matches!(*state.auth, Auth::Disabled) {
        req.extensions_mut().insert(Caller::anonymous());
        return Ok(next.run(req).await);
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme name is case-insensitive (RFC 7235 §2.1).
        .and_then(|v| {
            v.get(..7)
                .filter(|s| s.eq_ignore_ascii_case("bearer "))
                .map(|_| &v[7..])
        })
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthorized("missing bearer token (Authorization: Bearer <token>)")
        })?;
    match state.auth.role_of(presented) {
        None => Err(ApiError::unauthorized("invalid token")),
        Some(Role::Viewer) if req.method() != Method::GET && req.method() != Method::HEAD => {
            Err(ApiError::forbidden("viewer tokens may only read (GET)"))
        }
        Some(_) => {
            let caller = Caller::token(presented);
            req.extensions_mut().insert(caller);
            Ok(next.run(req).await)
        }
    }
}
