//! Subscriptions: one task samples every monitored node together, once per `cycle_time_ms`
//! (the configured publishing rate), through the PLC's shared sampler, and hands the values
//! to async-opcua's subscriptions, which filter unchanged values, thin slower items by their
//! own sampling interval and queue (boundedly) for the publish responses. However many
//! clients monitor however many items, the PLC sees one sample request per period.

use super::bindings::{self, Binding};
use crate::iec::TimeMapping;
use crate::plc::DebugVars;
use opcua::server::{MonitoredItemHandle, SubscriptionCache, SubscriptionState};
use opcua::types::{AttributeId, DataValue, DateTime, MonitoringMode, NodeId, NumericRange, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Item {
    node: NodeId,
    mode: MonitoringMode,
    session: u32,
}

pub struct Monitor {
    plc: Arc<dyn DebugVars>,
    time: TimeMapping,
    period: Duration,
    timeout: Duration,
    program_gen: u32,
    items: Mutex<HashMap<MonitoredItemHandle, Item>>,
    stop: CancellationToken,
    /// Sampling rounds done (for status and tests).
    rounds: std::sync::atomic::AtomicU64,
}

impl Monitor {
    pub fn new(
        plc: Arc<dyn DebugVars>,
        time: TimeMapping,
        period: Duration,
        timeout: Duration,
        program_gen: u32,
    ) -> Monitor {
        Monitor {
            plc,
            time,
            period,
            timeout,
            program_gen,
            items: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
            rounds: Default::default(),
        }
    }

    fn items(&self) -> MutexGuard<'_, HashMap<MonitoredItemHandle, Item>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, handle: MonitoredItemHandle, node: NodeId, mode: MonitoringMode, session: u32) {
        self.items().insert(handle, Item { node, mode, session });
    }

    pub fn remove(&self, handle: MonitoredItemHandle) {
        self.items().remove(&handle);
    }

    pub fn set_mode(&self, handle: MonitoredItemHandle, mode: MonitoringMode) {
        if let Some(item) = self.items().get_mut(&handle) {
            item.mode = mode;
        }
    }

    pub fn len(&self) -> usize {
        self.items().len()
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Starts the sampling task (stopped by [`Monitor::stop`] or when the server's
    /// subscriptions are dropped).
    pub fn spawn(self: Arc<Self>, subscriptions: Arc<SubscriptionCache>, bindings: HashMap<NodeId, Binding>) {
        let weak_subs = Arc::downgrade(&subscriptions);
        drop(subscriptions);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(subs) = weak_subs.upgrade() else { return };
                self.round(&subs, &bindings).await;
            }
        });
    }

    /// Drops the items of subscriptions async-opcua has closed (a client that stopped
    /// asking for publish responses: its subscription times out, and async-opcua keeps the
    /// closed shell until the session ends) or removed: nothing is sampled for no one.
    fn forget_closed(&self, subs: &SubscriptionCache) {
        let mut items = self.items();
        items.retain(|handle, item| {
            let Some(session) = subs.get_session_subscriptions(item.session) else { return false };
            let session = session.lock();
            session
                .get(handle.subscription_id)
                .is_some_and(|s| s.state() != SubscriptionState::Closed && s.contains_key(&handle.monitored_item_id))
        });
    }

    async fn round(&self, subs: &SubscriptionCache, bindings: &HashMap<NodeId, Binding>) {
        self.forget_closed(subs);
        let mut nodes: Vec<NodeId> =
            self.items().values().filter(|i| i.mode != MonitoringMode::Disabled).map(|i| i.node.clone()).collect();
        if nodes.is_empty() {
            return;
        }
        nodes.sort_unstable_by_key(|n| n.to_string());
        nodes.dedup();
        let wanted = nodes.iter().filter_map(|n| bindings.get(n));
        let sampled = bindings::sample_nodes(&*self.plc, wanted, self.timeout, self.program_gen).await;
        let now = DateTime::now();
        let values: Vec<(DataValue, &NodeId)> = nodes
            .iter()
            .filter_map(|n| {
                let b = bindings.get(n)?;
                let value = match &sampled {
                    Ok(values) => b.value(self.time, values),
                    Err(status) => Err(*status),
                };
                // A PLC that did not answer in time leaves the last value standing rather
                // than flooding every subscriber with a bad status each period.
                if matches!(value, Err(StatusCode::BadTimeout)) {
                    return None;
                }
                Some((bindings::data_value(value, &NumericRange::None, now), n))
            })
            .collect();
        subs.notify_data_change(values.into_iter().map(|(v, n)| (v, n, AttributeId::Value)));
        self.rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
