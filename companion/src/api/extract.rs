//! Request extractors: the caller's identity at a minimum role, its address, and JSON bodies
//! parsed leniently (any content type, our own error bodies).

use super::error::ApiError;
use crate::auth::Session;
use crate::auth::users::Role;
use crate::state::App;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

fn session(parts: &Parts, app: &App, needed: Role) -> Result<Session, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let session = app.auth.authenticate(header).map_err(ApiError::Unauthorized)?;
    if !session.user.role.at_least(needed) {
        return Err(ApiError::Forbidden(match needed {
            Role::Admin => "Admin privileges required".into(),
            other => format!("This requires the {} role or higher", other.as_str()),
        }));
    }
    Ok(session)
}

macro_rules! role_extractor {
    ($name:ident, $role:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $name(pub Session);

        impl FromRequestParts<Arc<App>> for $name {
            type Rejection = ApiError;
            async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
                session(parts, app, $role).map($name)
            }
        }
    };
}

role_extractor!(Viewer, Role::Viewer, "Any signed-in user: reads status, statistics, logs.");
role_extractor!(Operator, Role::User, "A `user` or `admin`: uploads, start/stop, forcing.");
role_extractor!(Admin, Role::Admin, "An `admin`: user management.");

/// An optional identity: `None` without an `Authorization` header, 401 for a bad one.
pub struct MaybeSession(pub Option<Session>);

impl FromRequestParts<Arc<App>> for MaybeSession {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        if parts.headers.get(AUTHORIZATION).is_none() {
            return Ok(MaybeSession(None));
        }
        session(parts, app, Role::Viewer).map(|s| MaybeSession(Some(s)))
    }
}

/// The peer's address (IPv4-mapped IPv6 folded to IPv4).
pub struct Peer(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::internal("peer address unknown"))?;
        Ok(Peer(crate::settings::canonical_ip(addr)))
    }
}

/// A JSON body, whatever its declared content type (the Editor's may vary), with a 400
/// of our own wording when it does not parse.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::BadRequest("Request body too large or unreadable".into()))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|_| ApiError::BadRequest("The request body must be a JSON object".into()))
    }
}
