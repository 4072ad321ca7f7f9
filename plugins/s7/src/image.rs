//! How the S7 server reaches the PLC: only through the port's [`ImagePort`] (the
//! companion passes its `PlcPort`; tests and the fuzzer pass `openplc_port::MemoryImage`).
//!
//! Reads take one view: the outputs and memory of one published scan and the inputs as
//! the port last published them. Writes go to rt-core's write queue in all-or-nothing
//! batches, each of at most `WriteRing::CAPACITY` image writes (the most the queue can
//! ever hold at once), and a request is answered once rt-core has applied them.
//!
//! # Requests larger than one batch
//!
//! A write request of one PDU can need more image writes than one batch may hold: a bool
//! mapping takes eight writes per S7 byte, so 930 data bytes (PDU 960) are 7 440 writes
//! against a queue of 4 096. Such a request is written as a real S7 CPU writes a large
//! PUT: in consecutive pieces, each consistent on its own, the program possibly running
//! between two of them. Pieces end at item boundaries, so each item is written whole in
//! one batch; only an item that alone needs more than a batch (a bool-mapped item over
//! 512 bytes) is cut, at a multiple of 4 096 writes, which is whole bytes. Each item is
//! then answered on its own: success once all of its writes were applied, 0x01 (hardware
//! fault) when a piece it belongs to could not be queued or was not applied in time (the
//! pieces before it stay written, as on a CPU whose PUT was interrupted).

use openplc_port::{ImagePort, PortError, WriteRing};
use shared_abi::image::{IecAddress, InputImage, OutputImage};
use shared_abi::layout::PlcState;
use shared_abi::sizes::ImageSizes;
use std::time::Duration;
use tokio::time::Instant;

/// Calls `f` once with the inputs, the outputs and the table sizes of one view of the
/// image (the sizes of the program that published those outputs); false (and `f` not
/// called) while the port has no rt-core attached.
pub fn read(port: &dyn ImagePort, f: impl FnOnce(&InputImage, &OutputImage, &ImageSizes)) -> bool {
    let outputs = port.outputs();
    let mut f = Some(f);
    port.read_inputs(&mut |inputs| {
        if let Some(f) = f.take() {
            f(inputs, &outputs.image, &outputs.sizes)
        }
    })
}

/// The PLC's state as an S7 client sees it: `Empty` (shown as STOP) while detached.
pub fn state(port: &dyn ImagePort) -> PlcState {
    port.state().unwrap_or(PlcState::Empty)
}

/// The most image writes one all-or-nothing batch holds.
pub const BATCH: usize = WriteRing::CAPACITY;

/// Where a batch may end in a list of writes: after each item's writes (`item_ends`,
/// ascending, the last one the list's length), and inside an item every [`BATCH`] writes
/// from its start. Returns the batch ends.
pub fn batch_ends(item_ends: &[usize]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut batch_start = 0;
    let mut item_start = 0;
    for &item_end in item_ends {
        if item_end - batch_start > BATCH {
            // The batch so far is full: close it before this item (if it holds anything).
            if item_start > batch_start {
                ends.push(item_start);
                batch_start = item_start;
            }
            // An item larger than a batch on its own: whole batches of it.
            while item_end - batch_start > BATCH {
                batch_start += BATCH;
                ends.push(batch_start);
            }
        }
        item_start = item_end;
    }
    if item_start > batch_start {
        ends.push(item_start);
    }
    ends
}

/// Writes `writes` in the batches `ends` describes (see [`batch_ends`]), in order, each
/// queued whole and waited for before the next. A full queue is retried each scan until
/// `timeout` has passed since the call. Returns how many writes were applied: all of them,
/// or the writes before the batch that failed, with why it failed.
pub async fn write(
    port: &dyn ImagePort,
    writes: &[(IecAddress, u64)],
    ends: &[usize],
    timeout: Duration,
) -> Result<(), (usize, PortError)> {
    let deadline = Instant::now() + timeout;
    let mut start = 0;
    for &end in ends {
        let batch = &writes[start..end];
        let ticket = loop {
            match port.write(batch) {
                Ok(ticket) => break ticket,
                Err(PortError::WriteQueueFull) => {
                    let now = port.cycle();
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err((start, PortError::WriteQueueFull));
                    }
                    if let Err(e) = port.wait_cycle_after(now, left).await {
                        return Err((start, e));
                    }
                }
                Err(e) => return Err((start, e)),
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        port.wait_applied(ticket, left).await.map_err(|e| (start, e))?;
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_requests_are_one_batch() {
        assert_eq!(batch_ends(&[8, 16, 20]), vec![20]);
        assert_eq!(batch_ends(&[BATCH]), vec![BATCH]);
        assert_eq!(batch_ends(&[0, 0]), Vec::<usize>::new(), "nothing to write, no batch");
    }

    #[test]
    fn batches_end_at_item_boundaries() {
        // Three items of 2 000 writes: two fit a batch, the third starts the next.
        assert_eq!(batch_ends(&[2000, 4000, 6000]), vec![4000, 6000]);
        // An item with no writes (an item that failed) between others changes nothing.
        assert_eq!(batch_ends(&[3000, 3000, 5000]), vec![3000, 5000]);
    }

    #[test]
    fn an_item_larger_than_a_batch_is_cut_into_whole_batches() {
        // 930 bool-mapped bytes: 7 440 writes, one item.
        assert_eq!(batch_ends(&[7440]), vec![BATCH, 7440]);
        // After a small item: that item alone, then the big one cut from its own start.
        assert_eq!(batch_ends(&[8, 8 + 7440]), vec![8, 8 + BATCH, 8 + 7440]);
        for ends in [batch_ends(&[7440]), batch_ends(&[100, 9000, 9100])] {
            let mut start = 0;
            for &e in &ends {
                assert!(e - start <= BATCH && e > start, "{ends:?}");
                start = e;
            }
        }
    }
}
