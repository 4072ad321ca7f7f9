//! Modbus (`openplc-modbus`): `conf/modbus_slave.json` starts the TCP server,
//! `conf/modbus_master.json` the master.

use super::{BoxFuture, Protocol, Running, StartContext, StartFailure};
use std::path::Path;

pub struct Modbus;

impl Protocol for Modbus {
    fn name(&self) -> &'static str {
        "modbus"
    }

    fn check(&self, conf_dir: &Path) -> Result<(), StartFailure> {
        openplc_modbus::Config::from_conf_dir(conf_dir).map(drop).map_err(|e| StartFailure(e.to_string()))
    }

    fn start<'a>(&'a self, ctx: &'a StartContext) -> BoxFuture<'a, Result<Option<Box<dyn Running>>, StartFailure>> {
        Box::pin(async move {
            let config =
                openplc_modbus::Config::from_conf_dir(&ctx.conf_dir).map_err(|e| StartFailure(e.to_string()))?;
            if config.server.is_none() && config.master.is_none() {
                return Ok(None);
            }
            for w in config.warnings() {
                ctx.logs.warn(format!("Modbus: {w}"));
            }
            let handle =
                openplc_modbus::start(config, ctx.plc.port().clone()).await.map_err(|e| StartFailure(e.to_string()))?;
            if let Some(addr) = handle.server_addr() {
                ctx.logs.info(format!("Modbus TCP server listening on {addr}"));
            }
            Ok(Some(Box::new(handle) as Box<dyn Running>))
        })
    }
}

impl Running for openplc_modbus::Handle {
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(openplc_modbus::Handle::status(self)).unwrap_or(serde_json::Value::Null)
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(openplc_modbus::Handle::stop(*self))
    }
}
