//! `GET /api/admin/session`: what the presented token may do, so a client (the
//! dashboard) can check a token before keeping it and show only the actions its
//! role allows.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Auth, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, NoQuery};
use crate::AppState;

/// The role of the token a request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionRole {
    /// May do everything.
    Admin,
    /// May only read (GET).
    Viewer,
}

/// Answer of `GET /api/admin/session`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub role: SessionRole,
}

/// The bearer token of a request, as the auth middleware reads it.
fn presented(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        .map(|_| value[7..].trim())
}

/// The role of the presented token: `admin` or `viewer` (every request is an admin
/// when the API runs without auth).
#[utoipa::path(get, path = "/api/admin/session", operation_id = "getSession", tag = "system", security(("bearer" = [])),
    responses(
        (status = 200, description = "The token's role", body = Session),
        (status = 400, description = "Invalid input; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody)
    ))]
pub async fn session(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<Session>, ApiError> {
    let role = match &*state.auth {
        Auth::Disabled => Role::Admin,
        auth => presented(&headers)
            .and_then(|token| auth.role_of(token))
            .ok_or_else(|| ApiError::unauthorized("invalid token"))?,
    };
    let role = match role {
        Role::Admin => SessionRole::Admin,
        Role::Viewer => SessionRole::Viewer,
    };
    Ok(Json(Session { role }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn reads_the_bearer_token_like_the_middleware() {
        assert_eq!(presented(&headers("Bearer abc")), Some("abc"));
        assert_eq!(presented(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(presented(&headers("Basic abc")), None);
        assert_eq!(presented(&HeaderMap::new()), None);
    }

    #[test]
    fn roles_serialize_in_lowercase() {
        let json = serde_json::to_value(Session {
            role: SessionRole::Viewer,
        })
        .unwrap();
        assert_eq!(json, serde_json::json!({"role": "viewer"}));
    }
}
