//! The OpenPLC Editor's debugger: Socket.IO namespace `/api/debug` carrying the Editor's
//! debug PDUs, served from values rt-core copies at the end of each scan and forces it
//! applies around each scan. A library the companion mounts on its HTTPS server.
//!
//! Layers, bottom up:
//! - [`protocol`]: the PDU codec (both families, every malformed case), no I/O.
//! - [`values`]: program bytes → the bytes the Editor decodes (MatIEC TIME is narrowed).
//! - [`service`]: one command in, one reply out ([`Debugger`]), over an
//!   `openplc_port::PlcPort`: reads lease their variables in the port's shared watch list
//!   (which plugins and the REST monitor use too), forces are the port's commands.
//! - [`socketio`]: the namespace, authentication at connect, in-order replies.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use openplc_debugger::*;
//! # async fn example(port: Arc<openplc_port::PlcPort>) {
//! let auth = |token: &str| -> Result<Identity, String> {
//!     // check the JWT; viewers may monitor, not force
//!     Ok(Identity { name: "alice".into(), may_force: true })
//! };
//! let debugger = Debugger::new(port, Arc::new(auth), Config::default());
//! let (layer, _io) = socketio::layer(debugger);
//! let app: axum::Router = axum::Router::new().layer(layer);
//! # }
//! ```

pub mod protocol;
pub mod service;
pub mod socketio;
pub mod values;

pub use protocol::Family;
pub use service::{Authenticator, Config, Debugger, Identity, Reply, Session};
