//! OPC-UA (`openplc-opcua`): `conf/opcua.json` starts the server, `conf/opcua_client.json`
//! the client; certificates (the server's own, trusted and refused client certificates, the
//! client's) live in `<data dir>/opcua/`.

use super::{BoxFuture, Protocol, Running, StartContext, StartFailure};
use openplc_opcua::{Config, Handle, Plc};

pub struct Opcua;

impl Protocol for Opcua {
    fn name(&self) -> &'static str {
        "opcua"
    }

    fn check(&self, conf_dir: &std::path::Path) -> Result<(), StartFailure> {
        Config::from_conf_dir(conf_dir).map(drop).map_err(|e| StartFailure(e.to_string()))
    }

    fn start<'a>(&'a self, ctx: &'a StartContext) -> BoxFuture<'a, Result<Option<Box<dyn Running>>, StartFailure>> {
        Box::pin(async move {
            let config = Config::from_conf_dir(&ctx.conf_dir).map_err(|e| StartFailure(e.to_string()))?;
            if config.is_empty() {
                return Ok(None);
            }
            for w in config.warnings() {
                ctx.logs.warn(format!("OPC-UA: {w}"));
            }
            let plc = Plc::from_port(ctx.plc.port().clone());
            let handle = openplc_opcua::start(config, plc, &ctx.data_dir.join("opcua"))
                .await
                .map_err(|e| StartFailure(format!("OPC-UA: {e}")))?;
            if let Some(server) = handle.server() {
                ctx.logs.info(format!(
                    "OPC-UA server listening on {} ({})",
                    server.local_addr(),
                    server.endpoint_url()
                ));
            }
            for remote in handle.status().client {
                ctx.logs.info(format!("OPC-UA client: connecting to {} ({})", remote.name, remote.endpoint_url));
            }
            Ok(Some(Box::new(handle) as Box<dyn Running>))
        })
    }
}

impl Running for Handle {
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(Handle::status(self)).unwrap_or(serde_json::Value::Null)
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(Handle::stop(*self))
    }
}
