//! `rest_bodies`: the JSON bodies of the REST API through the extractor every handler uses
//! (`companion::api::extract::JsonBody`: any content type, our own 400), into each typed
//! body (`login`, `create-user`, `update-user`, `password-change`, `plugin-command`), then
//! the checks the handlers apply to the fields (`check_username`, `valid_password`,
//! `Role::parse`, the command forwarded to a plugin), and the project snapshot's
//! `snapshot_metadata` part (`companion::program::snapshot::normalize_metadata`). Not the HTTP
//! layer, sessions or the user store.

use crate::support::block_on;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use openplc_companion::api::error::ApiError;
use openplc_companion::api::extract::JsonBody;
use openplc_companion::api::plugins::PluginCommand;
use openplc_companion::api::users::{CreateUser, Login, PasswordChange, UpdateUser};
use openplc_companion::auth::users::{Role, check_username, valid_password};
use openplc_companion::program::snapshot;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub fn run(data: &[u8]) {
    if let Some(b) = body::<Login>(data) {
        // Anything goes to the password check; only the shapes matter here.
        let _ = (b.username, b.password);
    }
    if let Some(b) = body::<CreateUser>(data) {
        username(b.username.as_deref());
        password(b.password.as_deref());
        role(b.role.as_deref());
    }
    if let Some(b) = body::<UpdateUser>(data) {
        username(b.username.as_deref());
        password(b.password.as_deref());
        password(b.current_password.as_deref());
        role(b.role.as_deref());
    }
    if let Some(b) = body::<PasswordChange>(data) {
        password(b.old_password.as_deref());
        password(b.new_password.as_deref());
    }
    if let Some(b) = body::<PluginCommand>(data) {
        plugin_command(b);
    }
    snapshot_metadata(data);
}

/// What the device keeps of an upload's snapshot description: its own shape only, printable
/// bounded text, a project name, and the same answer from its own output.
fn snapshot_metadata(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(meta) = snapshot::normalize_metadata(text, data.len() as u64) else { return };
    assert!(meta.format_version >= 1);
    assert!(!meta.project_name.is_empty());
    assert!(meta.libraries.len() <= 256);
    let strings = [&meta.project_name, &meta.editor_version, &meta.uploaded_by, &meta.timestamp];
    for s in strings.into_iter().chain(meta.libraries.iter().flat_map(|l| [&l.name, &l.version, &l.hash])) {
        assert!(s.chars().count() <= 512 && s.trim() == s, "{s:?}");
        assert!(!s.chars().any(openplc_companion::text::is_hidden), "{s:?}");
    }
    let kept = serde_json::to_string(&meta).unwrap_or_else(|e| panic!("serialising {meta:?}: {e}"));
    let again = snapshot::normalize_metadata(&kept, meta.size_bytes).unwrap_or_else(|e| panic!("{kept}: {e}"));
    assert_eq!(again, meta, "normalising is idempotent");
}

/// The body as a handler receives it, or the 400 it answers.
fn body<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    let request = Request::new(Body::from(data.to_vec()));
    match block_on(JsonBody::<T>::from_request(request, &())) {
        Ok(JsonBody(b)) => Some(b),
        Err(ApiError::BadRequest(msg)) => {
            assert!(
                !msg.to_ascii_lowercase().contains("token"),
                "the Editor would take {msg:?} for an expired session"
            );
            None
        }
        Err(other) => panic!("a body that does not parse is a 400, not {other:?}"),
    }
}

fn username(name: Option<&str>) {
    let Some(name) = name else { return };
    if let Ok(valid) = check_username(name) {
        assert!(!valid.is_empty() && valid.chars().count() <= 64, "{valid:?}");
        assert!(!valid.chars().any(openplc_companion::text::is_hidden), "no hidden character in {valid:?}");
        assert_eq!(check_username(valid), Ok(valid), "a valid name stays valid as stored");
    }
}

fn password(pw: Option<&str>) {
    if let Some(pw) = pw
        && valid_password(pw)
    {
        assert!(!pw.is_empty() && pw.len() <= 1024);
    }
}

fn role(text: Option<&str>) {
    if let Some(r) = text.and_then(Role::parse) {
        assert_eq!(Role::parse(r.as_str()), Some(r));
    }
}

/// What `plugin_command` forwards to a plugin: `{"command", "params"}` as one line of JSON
/// a C plugin can take as a C string.
fn plugin_command(b: PluginCommand) {
    if b.plugin.is_empty() || b.command.is_empty() {
        return;
    }
    let forwarded = json!({ "command": b.command, "params": b.params }).to_string();
    assert!(!forwarded.contains('\0'), "a NUL would cut the command short in C");
    let back: Value = serde_json::from_str(&forwarded).unwrap_or_else(|e| panic!("forwarded JSON does not parse: {e}"));
    assert_eq!(back["command"], Value::String(b.command));
}
