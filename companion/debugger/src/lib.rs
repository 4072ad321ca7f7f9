//! The OpenPLC Editor's debugger: Socket.IO namespace `/api/debug` carrying the Editor's
//! debug PDUs, served from values rt-core copies at the end of each scan and forces it
//! applies around each scan. A library the companion mounts on its HTTPS server.
//!
//! Layers, bottom up:
//! - [`protocol`]: the PDU codec (both families, every malformed case), no I/O.
//! - [`values`]: program bytes → the bytes the Editor decodes (MatIEC TIME is narrowed).
//! - [`watch`]: one watch list for all clients, and the thread that samples it.
//! - [`backend`]: the trait the companion implements over its PLC bridge;
//!   [`backend::RtClientBackend`] implements it over an `RtClient`.
//! - [`service`]: one command in, one reply out ([`Debugger`]).
//! - [`socketio`]: the namespace, authentication at connect, in-order replies.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use openplc_debugger::*;
//! # async fn example(backend: Arc<dyn Backend>) {
//! let auth = |token: &str| -> Result<Identity, String> {
//!     // check the JWT; viewers may monitor, not force
//!     Ok(Identity { name: "alice".into(), may_force: true })
//! };
//! let debugger = Debugger::new(backend, Arc::new(auth), Config::default());
//! let (layer, _io) = socketio::layer(debugger);
//! let app: axum::Router = axum::Router::new().layer(layer);
//! # }
//! ```

pub mod backend;
pub mod protocol;
pub mod service;
pub mod socketio;
pub mod values;
pub mod watch;

pub use backend::{Backend, BackendError, RtClientBackend};
pub use protocol::Family;
pub use service::{Authenticator, Config, Debugger, Identity, Reply, Session};
