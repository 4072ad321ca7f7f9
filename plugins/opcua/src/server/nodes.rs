//! The PLC's namespace: the configured nodes in async-opcua's in-memory address space
//! (browse names, types, access levels), with every Value read, written and monitored
//! through the PLC rather than stored.

use super::auth::PermissionTable;
use super::bindings::{self, Binding};
use super::monitor::Monitor;
use crate::config::NodeDef;
use crate::iec::TimeMapping;
use crate::plc::DebugVars;
use async_trait::async_trait;
use opcua::nodes::{ObjectBuilder, VariableBuilder};
use opcua::server::CreateMonitoredItem;
use opcua::server::address_space::{AccessLevel, AddressSpace};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::InMemoryNodeManagerImpl;
use opcua::server::node_manager::{
    MonitoredItemRef, MonitoredItemUpdateRef, ParsedReadValueId, RequestContext, ServerContext, WriteNode,
};
use opcua::sync::RwLock;
use opcua::types::{
    AttributeId, DataValue, DateTime, MonitoringMode, NodeId, NumericRange, ObjectId, ObjectTypeId, StatusCode,
    TimestampsToReturn, VariableTypeId,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What the node manager needs from the server.
pub struct PlcNodesConfig {
    pub namespace_uri: String,
    pub nodes: Vec<NodeDef>,
    pub bindings: HashMap<String, Binding>,
    pub plc: Arc<dyn DebugVars>,
    pub time_mapping: TimeMapping,
    pub read_timeout: Duration,
    pub cycle_time: Duration,
    pub program_gen: u32,
    pub permissions: Arc<PermissionTable>,
    pub monitor: Arc<Monitor>,
}

pub struct PlcNodes {
    namespace: NamespaceMetadata,
    bindings: HashMap<NodeId, Binding>,
    plc: Arc<dyn DebugVars>,
    time: TimeMapping,
    read_timeout: Duration,
    program_gen: u32,
    monitor: Arc<Monitor>,
}

/// Builds the namespace into `address_space` (called by async-opcua with it locked).
pub fn build(c: PlcNodesConfig, context: ServerContext, address_space: &mut AddressSpace) -> PlcNodes {
    let index = context.type_tree.write().namespaces_mut().add_namespace(&c.namespace_uri);
    address_space.add_namespace(&c.namespace_uri, index);
    c.permissions.set_namespace(index);
    let objects: NodeId = ObjectId::ObjectsFolder.into();
    for n in &c.nodes {
        insert(n, index, &objects, true, &c, address_space);
    }
    let bindings: HashMap<NodeId, Binding> =
        c.bindings.into_iter().map(|(id, b)| (NodeId::new(index, id), b)).collect();
    let monitor = c.monitor;
    PlcNodes {
        namespace: NamespaceMetadata { namespace_uri: c.namespace_uri, namespace_index: index, ..Default::default() },
        bindings,
        plc: c.plc,
        time: c.time_mapping,
        read_timeout: c.read_timeout,
        program_gen: c.program_gen,
        monitor,
    }
}

fn insert(n: &NodeDef, ns: u16, parent: &NodeId, top: bool, c: &PlcNodesConfig, space: &mut AddressSpace) {
    match n {
        NodeDef::Object { node_id, browse_name, display_name, description, children } => {
            let id = NodeId::new(ns, node_id.clone());
            let b = ObjectBuilder::new(
                &id,
                opcua::types::QualifiedName::new(ns, browse_name.as_str()),
                display_name.as_str(),
            )
            .description(description.as_str())
            .has_type_definition(ObjectTypeId::BaseObjectType);
            let b = if top { b.organized_by(parent.clone()) } else { b.component_of(parent.clone()) };
            b.insert(space);
            for child in children {
                insert(child, ns, &id, false, c, space);
            }
        }
        NodeDef::Variable { node_id, browse_name, display_name, ty, permissions, .. }
        | NodeDef::Array { node_id, browse_name, display_name, ty, permissions, .. } => {
            let id = NodeId::new(ns, node_id.clone());
            let mut access = AccessLevel::CURRENT_READ;
            if permissions.any_write() {
                access |= AccessLevel::CURRENT_WRITE;
            }
            let mut b = VariableBuilder::new(
                &id,
                opcua::types::QualifiedName::new(ns, browse_name.as_str()),
                display_name.as_str(),
            )
            .data_type(crate::iec::data_type(*ty, c.time_mapping))
            .access_level(access)
            .user_access_level(access)
            .minimum_sampling_interval(c.cycle_time.as_secs_f64() * 1000.0)
            .has_type_definition(VariableTypeId::BaseDataVariableType);
            if let NodeDef::Variable { description, .. } = n {
                b = b.description(description.as_str()).value(crate::iec::zero(*ty, c.time_mapping)).value_rank(-1);
            }
            if let NodeDef::Array { length, .. } = n {
                b = b.value_rank(1).array_dimensions(&[*length]);
            }
            let b = if top { b.organized_by(parent.clone()) } else { b.component_of(parent.clone()) };
            b.insert(space);
        }
    }
}

impl PlcNodes {
    async fn read(&self, nodes: &[&ParsedReadValueId], allowed: Vec<Result<(), StatusCode>>) -> Vec<DataValue> {
        let now = DateTime::now();
        let wanted: Vec<&Binding> = nodes
            .iter()
            .zip(&allowed)
            .filter(|(_, ok)| ok.is_ok())
            .filter_map(|(n, _)| self.bindings.get(&n.node_id))
            .collect();
        let sampled = bindings::sample_nodes(&*self.plc, wanted.into_iter(), self.read_timeout, self.program_gen).await;
        nodes
            .iter()
            .zip(allowed)
            .map(|(n, ok)| {
                let value = ok.and_then(|()| {
                    let b = self.bindings.get(&n.node_id).ok_or(StatusCode::BadNodeIdUnknown)?;
                    let values = sampled.as_ref().map_err(|s| *s)?;
                    b.value(self.time, values)
                });
                bindings::data_value(value, &n.index_range, now)
            })
            .collect()
    }
}

#[async_trait]
impl InMemoryNodeManagerImpl for PlcNodes {
    async fn init(&self, _address_space: &mut AddressSpace, context: ServerContext) {
        self.monitor.clone().spawn(context.subscriptions.clone(), self.bindings.clone());
    }

    fn name(&self) -> &str {
        "openplc"
    }

    fn namespaces(&self) -> Vec<NamespaceMetadata> {
        vec![self.namespace.clone()]
    }

    async fn read_values(
        &self,
        context: &RequestContext,
        address_space: &RwLock<AddressSpace>,
        nodes: &[&ParsedReadValueId],
        _max_age: f64,
        _timestamps_to_return: TimestampsToReturn,
    ) -> Vec<DataValue> {
        let allowed: Vec<Result<(), StatusCode>> = {
            let space = address_space.read();
            nodes.iter().map(|n| space.validate_node_read(context, n).map(|_| ())).collect()
        };
        self.read(nodes, allowed).await
    }

    async fn create_value_monitored_items(
        &self,
        context: &RequestContext,
        address_space: &RwLock<AddressSpace>,
        items: &mut [&mut &mut CreateMonitoredItem],
    ) {
        let to_read: Vec<&ParsedReadValueId> = items.iter().map(|i| i.item_to_monitor()).collect();
        let allowed: Vec<Result<(), StatusCode>> = {
            let space = address_space.read();
            to_read.iter().map(|n| space.validate_node_read(context, n).map(|_| ())).collect()
        };
        let denied: Vec<bool> = allowed.iter().map(|a| a.is_err()).collect();
        let values = self.read(&to_read, allowed).await;
        for ((item, value), denied) in items.iter_mut().zip(values).zip(denied) {
            if denied {
                item.set_status(value.status.unwrap_or(StatusCode::BadUserAccessDenied));
                continue;
            }
            item.set_initial_value(value);
            item.set_status(StatusCode::Good);
            let node = item.item_to_monitor().node_id.clone();
            if self.bindings.contains_key(&node) {
                self.monitor.add(item.handle(), node, item.monitoring_mode(), context.session_id());
            }
        }
    }

    async fn modify_monitored_items(&self, _context: &RequestContext, _items: &[&MonitoredItemUpdateRef]) {
        // Sampling runs at the publishing rate for every item; a slower item is thinned by
        // its own sampling interval in the subscription.
    }

    async fn set_monitoring_mode(&self, _context: &RequestContext, mode: MonitoringMode, items: &[&MonitoredItemRef]) {
        for it in items {
            self.monitor.set_mode(it.handle(), mode);
        }
    }

    async fn delete_monitored_items(&self, _context: &RequestContext, items: &[&MonitoredItemRef]) {
        for it in items {
            self.monitor.remove(it.handle());
        }
    }

    async fn write(
        &self,
        context: &RequestContext,
        address_space: &RwLock<AddressSpace>,
        nodes_to_write: &mut [&mut WriteNode],
    ) -> Result<(), StatusCode> {
        // Check and encode everything first (under the lock), then write without it.
        let mut work: Vec<Option<Vec<(u32, Vec<u8>)>>> = Vec::with_capacity(nodes_to_write.len());
        {
            let mut space = address_space.write();
            let type_tree = context.type_tree.read();
            for w in nodes_to_write.iter_mut() {
                let v = w.value();
                let checked = (|| {
                    if v.attribute_id != AttributeId::Value {
                        return Err(StatusCode::BadNotWritable);
                    }
                    let b = self.bindings.get(&v.node_id).ok_or(StatusCode::BadNodeIdUnknown)?;
                    space.validate_node_write(context, v, &*type_tree)?;
                    if !matches!(v.index_range, NumericRange::None) {
                        return Err(StatusCode::BadWriteNotSupported);
                    }
                    if v.value.status.is_some_and(|s| s != StatusCode::Good)
                        || v.value.source_timestamp.is_some()
                        || v.value.server_timestamp.is_some()
                    {
                        return Err(StatusCode::BadWriteNotSupported);
                    }
                    let value = v.value.value.as_ref().ok_or(StatusCode::BadTypeMismatch)?;
                    b.encode(self.time, value)
                })();
                match checked {
                    Ok(bytes) => work.push(Some(bytes)),
                    Err(status) => {
                        w.set_status(status);
                        work.push(None);
                    }
                }
            }
        }
        for (w, bytes) in nodes_to_write.iter_mut().zip(work) {
            let Some(bytes) = bytes else { continue };
            let mut status = StatusCode::Good;
            for (var, value) in bytes {
                if let Err(e) = self.plc.write_var(var, &value, self.read_timeout).await {
                    tracing::warn!("OPC-UA write to {} failed: {e}", w.value().node_id);
                    status = match e {
                        crate::plc::PlcError::Timeout => StatusCode::BadTimeout,
                        crate::plc::PlcError::Rejected(_) => StatusCode::BadNotWritable,
                        crate::plc::PlcError::Unsupported => StatusCode::BadNotSupported,
                        crate::plc::PlcError::Unavailable(_) => StatusCode::BadNoCommunication,
                    };
                    break;
                }
            }
            w.set_status(status);
        }
        Ok(())
    }
}
