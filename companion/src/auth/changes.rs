//! A counter that ticks whenever a user or a token changes (created, renamed, demoted,
//! deleted, password changed, logged out), so whoever holds a session opened earlier —
//! the debugger's sockets — can check it again at once instead of at its next request.

use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone)]
pub struct Changes(Arc<watch::Sender<u64>>);

impl Default for Changes {
    fn default() -> Self {
        Changes(Arc::new(watch::channel(0).0))
    }
}

impl Changes {
    /// Records a change (after it is in effect: the store and the revocation list already
    /// answer with the new state).
    pub fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every later [`Changes::bump`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_see_later_bumps_only() {
        let c = Changes::default();
        c.bump();
        let mut rx = c.subscribe();
        assert!(!rx.has_changed().unwrap());
        c.clone().bump();
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        assert!(!rx.has_changed().unwrap());
    }
}
