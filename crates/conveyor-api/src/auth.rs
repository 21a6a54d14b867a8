//! Bearer-token auth: admin tokens may do everything, viewer tokens only GET.
//! Tokens are compared in constant time and never logged.

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

pub async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if matches!(*state.auth, Auth::Disabled) {
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
        Some(_) => Ok(next.run(req).await),
    }
}
