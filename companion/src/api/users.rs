//! Users and sessions: the Editor's connect flow (`get-users-info`, `create-user`,
//! `login`) and the user management of the ≥ 4.1.9 line (`whoami`, `update-user`,
//! `delete-user`), with the last-admin guard.

use super::error::ApiError;
use super::extract::{Admin, JsonBody, MaybeSession, Peer, Viewer};
use crate::auth::password::{Busy, HashError};
use crate::auth::throttle::{Attempt, Refused};
use crate::auth::users::{Role, StoreError, User, check_username, valid_password};
use crate::state::App;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

type Reply = Result<(StatusCode, Json<Value>), ApiError>;

fn ok(body: Value) -> Reply {
    Ok((StatusCode::OK, Json(body)))
}

/// Runs a user-store change (which fsyncs) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?.map_err(store_error)
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Duplicate => ApiError::Conflict("Username already exists".into()),
        StoreError::NotFound => ApiError::NotFound("User not found".into()),
        StoreError::LastAdmin => ApiError::Conflict("The last admin cannot be removed or demoted".into()),
        StoreError::NotFirst => ApiError::Raw(StatusCode::UNAUTHORIZED, json!({ "msg": "User already created!" })),
        StoreError::Io(e) => ApiError::internal(format!("user store: {e}")),
    }
}

fn refused(r: Refused) -> ApiError {
    match r {
        Refused::LockedOut(wait) => ApiError::TooManyRequests {
            wait,
            msg: "Too many failed login attempts from this address; try again in {secs} s".into(),
        },
        Refused::Busy => ApiError::TooManyRequests {
            wait: std::time::Duration::from_secs(1),
            msg: "Other logins from this address are being checked; try again in {secs} s".into(),
        },
    }
}

fn busy(_: Busy) -> ApiError {
    ApiError::Unavailable {
        wait: std::time::Duration::from_secs(1),
        msg: "The runtime is checking many passwords at the moment; try again in {secs} s".into(),
    }
}

fn hash_error(e: HashError) -> ApiError {
    match e {
        HashError::Busy(b) => busy(b),
        HashError::Failed(e) => ApiError::internal(e),
    }
}

/// Checks `password` against `user`'s as one throttled attempt of `peer` (a wrong one
/// counts towards the lockouts like a failed login).
async fn check_password(app: &App, peer: std::net::IpAddr, user: &User, password: String) -> Result<bool, ApiError> {
    let attempt: Attempt = app.auth.throttle.reserve(peer, &user.username).map_err(refused)?;
    let ok = app.auth.hasher.verify(password, Some(user.password_hash.clone())).await.map_err(busy)?;
    if ok {
        attempt.right()
    } else {
        attempt.wrong()
    }
    Ok(ok)
}

/// `GET /api/get-users-info`: the Editor's first probe. Without credentials it only says
/// whether users exist (404 none, 200 some); with them it lists the users.
pub async fn get_users_info(State(app): State<Arc<App>>, session: MaybeSession) -> Reply {
    if session.0.is_some() {
        let users: Vec<Value> = app.auth.users.list().iter().map(User::public).collect();
        return ok(Value::Array(users));
    }
    if app.auth.users.is_empty() {
        Ok((StatusCode::NOT_FOUND, Json(json!({ "msg": "No users found" }))))
    } else {
        ok(json!({ "msg": "Users found" }))
    }
}

#[derive(Deserialize)]
pub struct CreateUser {
    pub username: Option<String>,
    pub password: Option<String>,
    pub role: Option<String>,
}

/// `POST /api/create-user`: the first user without credentials (from where the
/// first-user policy allows; always an admin), later users by an admin.
pub async fn create_user(
    State(app): State<Arc<App>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CreateUser>,
) -> Reply {
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let (first, role) = if authorization.is_some() {
        let session = app.auth.authenticate(authorization).map_err(ApiError::Unauthorized)?;
        if session.user.role != Role::Admin {
            return Err(ApiError::Forbidden("Admin privileges required".into()));
        }
        let role = match req.role.as_deref() {
            None => Role::User,
            Some(r) => Role::parse(r)
                .ok_or_else(|| ApiError::BadRequest(format!("Invalid role {r:?}: use admin, user or viewer")))?,
        };
        (false, role)
    } else {
        if !app.auth.users.is_empty() {
            return Err(ApiError::Raw(StatusCode::UNAUTHORIZED, json!({ "msg": "User already created!" })));
        }
        if !app.settings.first_user_from.allows(peer) {
            app.logs.warn(format!("Refused to create the first user for {peer}: outside the first-user policy"));
            return Err(ApiError::Forbidden(format!(
                "The first user cannot be created from {peer} (first_user_from = {:?}); create it from the device's \
                 local network or with `openplc-runtime add-user`",
                app.settings.first_user_from
            )));
        }
        (true, Role::Admin)
    };
    let password = req.password.filter(|p| valid_password(p));
    let (Some(username), Some(password)) = (req.username, password) else {
        return Err(ApiError::BadRequest("Missing username or password".into()));
    };
    let username = check_username(&username).map_err(|e| ApiError::BadRequest(e.to_string()))?.to_string();
    if app.auth.users.by_name(&username).is_some() {
        return Err(ApiError::Conflict("Username already exists".into()));
    }
    let hash = app.auth.hasher.hash(password).await.map_err(hash_error)?;
    let store_app = app.clone();
    let name = username.clone();
    let user = blocking(move || store_app.auth.users.create(&name, role, hash, first)).await?;
    app.logs.info(format!(
        "{} user {:?} ({}) created from {peer}",
        if first { "First" } else { "New" },
        user.username,
        user.role.as_str()
    ));
    Ok((StatusCode::CREATED, Json(json!({ "msg": "User created", "id": user.id, "role": user.role.as_str() }))))
}

#[derive(Deserialize)]
pub struct Login {
    pub username: Option<String>,
    pub password: Option<String>,
}

/// `POST /api/login` → `{"access_token": …}`; failures are a bare JSON string, as upstream.
pub async fn login(State(app): State<Arc<App>>, Peer(peer): Peer, JsonBody(req): JsonBody<Login>) -> Reply {
    let username = req.username.unwrap_or_default();
    // Reserved before hashing: concurrent guesses count before any of them is decided.
    let attempt = app.auth.throttle.reserve(peer, &username).map_err(refused)?;
    let user = app.auth.users.by_name(&username);
    let password = req.password.unwrap_or_default();
    let valid = app.auth.hasher.verify(password, user.as_ref().map(|u| u.password_hash.clone())).await.map_err(busy)?;
    let user = match (valid, user) {
        (true, Some(user)) => user,
        (_, user) => {
            attempt.wrong();
            let who = user.map(|u| format!("user {:?}", u.username)).unwrap_or_else(|| "an unknown user".into());
            app.logs.warn(format!("Failed login for {who} from {peer}"));
            return Err(ApiError::Raw(StatusCode::UNAUTHORIZED, json!("Wrong username or password")));
        }
    };
    attempt.right();
    let token = app.auth.tokens.issue(user.id, user.token_epoch).map_err(ApiError::internal)?;
    app.logs.info(format!("User {:?} logged in from {peer}", user.username));
    ok(json!({ "access_token": token }))
}

/// `POST /api/logout`: revokes the token in use (persistently).
pub async fn logout(State(app): State<Arc<App>>, Viewer(session): Viewer) -> Reply {
    let claims = session.claims.clone();
    let store_app = app.clone();
    tokio::task::spawn_blocking(move || store_app.auth.tokens.revoke(&claims))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("revocation list: {e}")))?;
    ok(json!({ "msg": "User logged out successfully" }))
}

/// `GET /api/whoami`.
pub async fn whoami(Viewer(session): Viewer) -> Reply {
    ok(session.user.public())
}

/// `GET /api/get-user-info/{id}`.
pub async fn get_user_info(State(app): State<Arc<App>>, _v: Viewer, Path(id): Path<u32>) -> Reply {
    let user = app.auth.users.get(id).ok_or_else(|| ApiError::NotFound("User not found".into()))?;
    ok(user.public())
}

#[derive(Deserialize)]
pub struct UpdateUser {
    pub username: Option<String>,
    pub password: Option<String>,
    pub current_password: Option<String>,
    pub role: Option<String>,
}

/// `PUT /api/update-user/{id}`: rename, password, role. Users may edit themselves (their
/// own password needs `current_password`); only admins edit others or change roles.
pub async fn update_user(
    State(app): State<Arc<App>>,
    Peer(peer): Peer,
    Viewer(session): Viewer,
    Path(id): Path<u32>,
    JsonBody(req): JsonBody<UpdateUser>,
) -> Reply {
    let is_self = session.user.id == id;
    let is_admin = session.user.role == Role::Admin;
    if !is_self && !is_admin {
        return Err(ApiError::Forbidden("Admin privileges required".into()));
    }
    if req.username.is_none() && req.password.is_none() && req.role.is_none() {
        return Err(ApiError::BadRequest("Nothing to update: give username, password or role".into()));
    }
    let role = match req.role.as_deref() {
        None => None,
        Some(_) if !is_admin => return Err(ApiError::Forbidden("Only an admin can change roles".into())),
        Some(r) => Some(
            Role::parse(r)
                .ok_or_else(|| ApiError::BadRequest(format!("Invalid role {r:?}: use admin, user or viewer")))?,
        ),
    };
    let username = match req.username.as_deref() {
        None => None,
        Some(u) => Some(check_username(u).map_err(|e| ApiError::BadRequest(e.to_string()))?.to_string()),
    };
    let target = app.auth.users.get(id).ok_or_else(|| ApiError::NotFound("User not found".into()))?;
    let new_hash = match req.password {
        None => None,
        Some(pw) => {
            if !valid_password(&pw) {
                return Err(ApiError::BadRequest("Invalid password".into()));
            }
            if is_self {
                let current = req.current_password.ok_or_else(|| {
                    ApiError::BadRequest("current_password is required to change your own password".into())
                })?;
                if !check_password(&app, peer, &target, current).await? {
                    return Err(ApiError::Forbidden("Current password is incorrect".into()));
                }
            }
            Some(app.auth.hasher.hash(pw).await.map_err(hash_error)?)
        }
    };
    let store_app = app.clone();
    let user = blocking(move || {
        store_app.auth.users.update(id, |u| {
            if let Some(name) = username {
                u.username = name;
            }
            if let Some(role) = role {
                u.role = role;
            }
            if let Some(hash) = new_hash {
                u.password_hash = hash;
                u.token_epoch = u.token_epoch.wrapping_add(1);
            }
            Ok(())
        })
    })
    .await?;
    app.logs.info(format!("User {:?} updated by {:?}", user.username, session.user.username));
    ok(json!({ "msg": "User updated", "user": user.public() }))
}

/// `DELETE /api/delete-user/{id}`: admins only, never oneself, never the last admin.
pub async fn delete_user(State(app): State<Arc<App>>, Admin(session): Admin, Path(id): Path<u32>) -> Reply {
    if session.user.id == id {
        return Err(ApiError::Forbidden("You cannot delete your own account".into()));
    }
    let store_app = app.clone();
    let user = blocking(move || store_app.auth.users.delete(id)).await?;
    app.logs.info(format!("User {:?} deleted by {:?}", user.username, session.user.username));
    ok(json!({ "msg": format!("User {} deleted successfully", user.username) }))
}

#[derive(Deserialize)]
pub struct PasswordChange {
    pub old_password: Option<String>,
    pub new_password: Option<String>,
}

/// `PUT /api/password-change/{id}` (the ≤ 4.1.x API): needs the old password.
pub async fn password_change(
    State(app): State<Arc<App>>,
    Peer(peer): Peer,
    Viewer(session): Viewer,
    Path(id): Path<u32>,
    JsonBody(req): JsonBody<PasswordChange>,
) -> Reply {
    if session.user.id != id && session.user.role != Role::Admin {
        return Err(ApiError::Forbidden("Admin privileges required".into()));
    }
    let (Some(old), Some(new)) = (req.old_password, req.new_password.filter(|p| valid_password(p))) else {
        return Err(ApiError::BadRequest("Both old and new passwords are required".into()));
    };
    let target = app.auth.users.get(id).ok_or_else(|| ApiError::NotFound("User not found".into()))?;
    if !check_password(&app, peer, &target, old).await? {
        return Err(ApiError::Forbidden("Old password is incorrect".into()));
    }
    let hash = app.auth.hasher.hash(new).await.map_err(hash_error)?;
    let store_app = app.clone();
    let user = blocking(move || {
        store_app.auth.users.update(id, |u| {
            u.password_hash = hash;
            u.token_epoch = u.token_epoch.wrapping_add(1);
            Ok(())
        })
    })
    .await?;
    ok(json!({ "msg": format!("Password for user {} updated successfully", user.username) }))
}
