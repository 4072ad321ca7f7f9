//! The engine's statistics: reset, published, and overruns reported at most once a second.

use super::{Engine, OVERRUN_REPORT_NS};
use crate::sys;
use bytemuck::Zeroable;
use shared_abi::msg::Event;
use shared_abi::stats::Stats;

impl Engine {
    pub(super) fn reset_stats(&mut self) {
        let period = self.stats.period_ns;
        self.stats = Stats::zeroed();
        self.stats.period_ns = period;
        self.stats.since_ns = sys::now_ns();
        self.prev_wake_ns = 0;
        self.shm.histogram.reset();
        self.reset_task_books();
    }

    pub(super) fn publish_stats(&self) {
        let stats = self.stats;
        // SAFETY: the engine is the single writer of the stats (see `reset_published_state`).
        unsafe { self.shm.stats.write(|s| *s = stats) };
    }

    pub(super) fn report_overruns(&mut self, now_ns: u64) {
        if self.overruns_unreported == 0 || now_ns.saturating_sub(self.last_overrun_report_ns) < OVERRUN_REPORT_NS {
            return;
        }
        self.emit(Event::Overruns {
            new: self.overruns_unreported,
            total: self.stats.overruns,
            worst_latency_ns: self.worst_latency_unreported,
        });
        self.overruns_unreported = 0;
        self.worst_latency_unreported = 0;
        self.last_overrun_report_ns = now_ns;
    }
}
