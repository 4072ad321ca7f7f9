//! S7comm (`openplc-s7`): `conf/s7comm.json` starts the server (ISO-on-TCP) over the
//! process image. Unlike the other protocols it keeps serving while the PLC is stopped: an
//! S7 CPU in STOP still answers its clients, and HMIs read the STOP from it.

use super::{BoxFuture, Protocol, Running, StartContext, StartFailure};
use std::path::Path;

pub struct S7;

impl Protocol for S7 {
    fn name(&self) -> &'static str {
        "s7"
    }

    fn check(&self, conf_dir: &Path) -> Result<(), StartFailure> {
        openplc_s7::load(conf_dir).map(drop).map_err(|e| StartFailure(e.to_string()))
    }

    fn serves_while_stopped(&self) -> bool {
        true
    }

    fn start<'a>(&'a self, ctx: &'a StartContext) -> BoxFuture<'a, Result<Option<Box<dyn Running>>, StartFailure>> {
        Box::pin(async move {
            let Some(config) = openplc_s7::load(&ctx.conf_dir).map_err(|e| StartFailure(e.to_string()))? else {
                return Ok(None);
            };
            if !config.enabled {
                ctx.logs.info("S7 server disabled by conf/s7comm.json (server.enabled is false)");
                return Ok(None);
            }
            for w in &config.warnings {
                ctx.logs.warn(format!("S7: {w}"));
            }
            let handle =
                openplc_s7::start(config, ctx.plc.port().clone()).await.map_err(|e| StartFailure(e.to_string()))?;
            if let Some(addr) = handle.local_addr() {
                ctx.logs.info(format!("S7 server listening on {addr}"));
            }
            Ok(Some(Box::new(handle) as Box<dyn Running>))
        })
    }
}

impl Running for openplc_s7::Handle {
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(openplc_s7::Handle::status(self)).unwrap_or(serde_json::Value::Null)
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(openplc_s7::Handle::stop(*self))
    }
}
