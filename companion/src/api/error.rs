//! Errors as responses. Bodies are `{"msg": "…"}` like upstream's; authentication failures
//! are always 401 (the Editor re-logs in on 401/403 only, never on 422), and no other error
//! body may contain the word "token" (the Editor would take it for an expired session).

use crate::auth::tokens::TokenError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

#[derive(Debug)]
pub enum ApiError {
    Unauthorized(TokenError),
    Forbidden(String),
    BadRequest(String),
    NotFound(String),
    Conflict(String),
    /// 429 with `Retry-After`.
    TooManyRequests {
        wait: Duration,
        msg: String,
    },
    /// 503 with `Retry-After`: refused at once rather than queued.
    Unavailable {
        wait: Duration,
        msg: String,
    },
    Internal(String),
    /// A body upstream sends verbatim (e.g. the login failure's bare JSON string).
    Raw(StatusCode, serde_json::Value),
}

impl ApiError {
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

/// Keeps the Editor's "expired session" heuristic from firing on unrelated errors.
pub fn scrub(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("token") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.to_ascii_lowercase().find("token") {
        out.push_str(&rest[..pos]);
        out.push_str("credential");
        rest = &rest[pos + 5..];
    }
    out.push_str(rest);
    out
}

fn msg(status: StatusCode, text: &str) -> Response {
    (status, Json(serde_json::json!({ "msg": text }))).into_response()
}

fn retry_after(status: StatusCode, wait: Duration, text: &str) -> Response {
    let secs = wait.as_secs().max(1);
    let mut r = msg(status, &scrub(&text.replace("{secs}", &secs.to_string())));
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Unauthorized(e) => msg(StatusCode::UNAUTHORIZED, e.message()),
            ApiError::Forbidden(m) => msg(StatusCode::FORBIDDEN, &scrub(&m)),
            ApiError::BadRequest(m) => msg(StatusCode::BAD_REQUEST, &scrub(&m)),
            ApiError::NotFound(m) => msg(StatusCode::NOT_FOUND, &scrub(&m)),
            ApiError::Conflict(m) => msg(StatusCode::CONFLICT, &scrub(&m)),
            ApiError::TooManyRequests { wait, msg: m } => retry_after(StatusCode::TOO_MANY_REQUESTS, wait, &m),
            ApiError::Unavailable { wait, msg: m } => retry_after(StatusCode::SERVICE_UNAVAILABLE, wait, &m),
            ApiError::Internal(m) => {
                tracing::error!("internal error: {m}");
                (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({ "error": scrub(&m) }))).into_response()
            }
            ApiError::Raw(status, body) => (status, Json(body)).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_word_in_any_case() {
        assert_eq!(scrub("bad Token here, token!"), "bad credential here, credential!");
        assert_eq!(scrub("no such user"), "no such user");
    }
}
