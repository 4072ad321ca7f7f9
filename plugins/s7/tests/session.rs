//! The protocol, frame by frame, over an in-memory image: what each request gets back.

mod support;

use openplc_port::{ImagePort, MemoryImage, PortError, PortFuture, WriteTicket};
use openplc_s7::S7Config;
use openplc_s7::session::{Close, Service, Session};
use openplc_s7::wire::iso::IsoError;
use shared_abi::image::{Area, IecAddress, InputImage, Width};
use shared_abi::layout::{OutputSnapshot, PlcState};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

const CONFIG: &str = r#"{
  "server": { "pdu_size": 480 },
  "data_blocks": [
    { "db_number": 1, "size_bytes": 16, "mapping": { "type": "bool_output", "start_buffer": 0 } },
    { "db_number": 2, "size_bytes": 20, "mapping": { "type": "int_memory", "start_buffer": 10 } },
    { "db_number": 3, "size_bytes": 8, "mapping": { "type": "dint_input", "start_buffer": 0 } },
    { "db_number": 7, "size_bytes": 65536, "mapping": { "type": "bool_memory", "start_buffer": 0 } }
  ],
  "system_areas": {
    "pe_area": { "enabled": true, "size_bytes": 8 },
    "pa_area": { "enabled": true, "size_bytes": 8 },
    "mk_area": { "enabled": true, "size_bytes": 8, "mapping": { "type": "int_memory", "start_buffer": 0 } }
  }
}"#;

fn a(area: Area, width: Width, index: u16, bit: u8) -> IecAddress {
    IecAddress::new(area, width, index, bit).unwrap()
}

#[tokio::test]
async fn a_connection_request_for_another_rack_or_slot_is_refused() {
    for called in [0x0105u16, 0x0122, 0x1002, 0x0402] {
        let mut h = Harness::from_json(CONFIG);
        let mut out = Vec::new();
        let frame = cr(called, 0x0A);
        let r = h.session.on_frame(&h.svc, &frame[4..], &mut out).await;
        assert_eq!(r, Err(Close::Refused(called)));
        let reply = replies(&out);
        assert_eq!(reply[0].error, 0x80, "answered with a disconnect request, not silence");
    }
    // Rack 0 slots 0, 1 and 2 are served by default; connection types PG, OP, S7 basic.
    for called in [0x0100u16, 0x0201, 0x0302] {
        let mut h = Harness::from_json(CONFIG);
        assert_eq!(h.send(&cr(called, 0x0A)).await.unwrap()[0].error, 0xD0);
    }
    let mut h = Harness::from_json(r#"{"server": {"rack": 0, "slot": 1}}"#);
    assert!(h.send(&cr(0x0102, 0x0A)).await.is_err(), "a configured slot narrows the choice");
}

#[tokio::test]
async fn a_calling_tsap_too_long_to_echo_is_refused() {
    let mut body = vec![0xE0, 0, 0, 0, 7, 0, 0xC0, 1, 0x0A, 0xC1, 240];
    body.extend_from_slice(&[7; 240]);
    body.extend_from_slice(&[0xC2, 2, 1, 2]);
    let mut tpdu = vec![body.len() as u8];
    tpdu.extend_from_slice(&body);
    let mut h = Harness::from_json(CONFIG);
    let mut out = Vec::new();
    let r = h.session.on_frame(&h.svc, &tpdu, &mut out).await;
    assert_eq!(r, Err(Close::Iso(IsoError::Parameter)));
    assert_eq!(replies(&out)[0].params, [6, 0x80, 0, 7, 0, 1, 0x82], "a well-formed disconnect request");
}

#[tokio::test]
async fn anything_but_a_connection_request_first_closes() {
    let mut h = Harness::from_json(CONFIG);
    assert!(matches!(h.send(&dt(&setup(480))).await, Err(Close::Unexpected(_))));
    let mut h = Harness::from_json(CONFIG);
    assert!(matches!(h.send(&[3, 0, 4, 0]).await, Err(Close::Iso(IsoError::TpktLength(1024)))), "frame too long");
}

#[tokio::test]
async fn pdu_size_is_the_smaller_of_ours_and_the_clients_never_below_240() {
    for (asked, got) in [(960u16, 480u16), (480, 480), (300, 300), (100, 240)] {
        let mut h = Harness::connected(CONFIG, asked).await;
        assert_eq!(h.session.pdu_size(), got, "asked {asked}");
        let r = h.request(&setup(asked)).await;
        assert_eq!(&r.params[..2], &[0xF0, 0]);
    }
}

#[tokio::test]
async fn reads_every_area_with_per_item_codes() {
    let mut h = Harness::connected(CONFIG, 480).await;
    set(&h.image, a(Area::Output, Width::Bit, 2, 5), 1);
    set(&h.image, a(Area::Memory, Width::Word, 11, 0), 0xBEEF);
    set(&h.image, a(Area::Input, Width::DWord, 1, 0), 0x0102_0304);
    set(&h.image, a(Area::Input, Width::Bit, 0, 3), 1);
    set(&h.image, a(Area::Output, Width::Bit, 7, 0), 1);
    set(&h.image, a(Area::Memory, Width::Word, 3, 0), 0x1234);
    let r = h
        .request(&read(&[
            item(2, 3, 1, DB, 0),      // DB1.DBB0..2: %QX0..2 packed
            item(4, 1, 2, DB, 16),     // DB2.DBW2 = %MW11, big-endian
            item(6, 1, 3, DB, 32),     // DB3.DBD4 = %ID1
            item(1, 1, 0, PE, 3),      // I0.3
            item(2, 1, 0, PA, 7 * 8),  // QB7
            item(4, 1, 0, MK, 6 * 8),  // MW6 = %MW3
            item(2, 1, 99, DB, 0),     // no DB99
            item(2, 5, 3, DB, 4 * 8),  // past the end of DB3
            item(0x1D, 1, 0, 0x1D, 0), // timers: none mapped
            item(4, 1, 2, DB, 3),      // a word at a bit offset
            item(0x0B, 1, 2, DB, 0),   // TIME: not a size we serve
            item(2, 0, 1, DB, 0),      // count 0
        ]))
        .await;
    assert_eq!((r.rosctr, r.error), (3, 0));
    assert_eq!(r.params, [4, 12]);
    let expected: Vec<u8> = [
        vec![0xFF, 4, 0, 24, 0, 0, 0x20, 0],
        vec![0xFF, 4, 0, 16, 0xBE, 0xEF],
        vec![0xFF, 4, 0, 32, 1, 2, 3, 4],
        vec![0xFF, 3, 0, 1, 1, 0],
        vec![0xFF, 4, 0, 8, 1, 0],
        vec![0xFF, 4, 0, 16, 0x12, 0x34],
        vec![0x0A, 0, 0, 0],
        vec![0x05, 0, 0, 0],
        vec![0x0A, 0, 0, 0],
        vec![0x05, 0, 0, 0],
        vec![0x06, 0, 0, 0],
        vec![0x05, 0, 0, 0],
    ]
    .concat();
    assert_eq!(r.data, expected);
}

#[tokio::test]
async fn a_read_of_count_0xffff_is_answered_not_crashed_on() {
    // upstream runtime#153: snap7's server died on this. Here: out of range (no mapping
    // reaches 64 KiB: DB7 is cut to the 1024 %MX bytes), "does not exist" on a missing
    // block, and the whole request refused with 0x8500 where the range exists but the
    // reply cannot fit the PDU.
    let mut h = Harness::connected(CONFIG, 480).await;
    let r = h.request(&read(&[item(2, 0xFFFF, 2, DB, 0), item(2, 0xFFFF, 99, DB, 0), item(4, 0xFFFF, 7, DB, 0)])).await;
    assert_eq!(r.data, [0x05, 0, 0, 0, 0x0A, 0, 0, 0, 0x05, 0, 0, 0]);
    let r = h.request(&read(&[item(2, 1000, 7, DB, 0)])).await;
    assert_eq!((r.error, r.params.as_slice(), r.data.len()), (0x8500, &[4u8, 0][..], 0));
    // Exactly at the PDU still fits: 480 - 12 header - 2 params - 4 item header.
    let r = h.request(&read(&[item(2, 462, 7, DB, 0)])).await;
    assert_eq!((r.error, r.data.len()), (0, 4 + 462));
    let r = h.request(&read(&[item(2, 463, 7, DB, 0)])).await;
    assert_eq!(r.error, 0x8500);
}

#[tokio::test]
async fn writes_land_in_the_image_as_one_batch() {
    let mut h = Harness::connected(CONFIG, 480).await;
    set(&h.image, a(Area::Memory, Width::Word, 12, 0), 0x1100);
    let before = h.image.cycle();
    let r = h
        .request(&write(&[
            (item(2, 1, 1, DB, 8), 4, 8, vec![0b1000_0001]), // DB1.DBB1 → %QX1.0 and %QX1.7
            (item(2, 3, 2, DB, 0), 4, 24, vec![0xAB, 0xCD, 0x22]), // %MW10 whole, high byte of %MW11
            (item(1, 1, 2, DB, 5 * 8 + 1), 3, 1, vec![1]),   // DB2.DBX5.1: bit 1 of %MW12's low byte
            (item(1, 1, 0, PA, 3 * 8 + 2), 3, 1, vec![1]),   // Q3.2
            (item(2, 1, 3, DB, 0), 4, 8, vec![1]),           // an input block: refused
            (item(1, 1, 0, PE, 0), 3, 1, vec![1]),           // I0.0: refused
            (item(4, 2, 2, DB, 0), 4, 16, vec![0, 1]),       // 2 words but 2 bytes: size mismatch
            (item(2, 1, 42, DB, 0), 4, 8, vec![1]),          // no DB42
        ]))
        .await;
    assert_eq!(r.params, [5, 8]);
    assert_eq!(r.data, [0xFF, 0xFF, 0xFF, 0xFF, 0x03, 0x03, 0x07, 0x0A]);
    assert_eq!(h.image.cycle(), before + 1, "every good item in one batch (the in-memory image counts one per batch)");
    assert_eq!(get(&h.image, a(Area::Output, Width::Bit, 1, 0)), 1);
    assert_eq!(get(&h.image, a(Area::Output, Width::Bit, 1, 1)), 0);
    assert_eq!(get(&h.image, a(Area::Output, Width::Bit, 1, 7)), 1);
    assert_eq!(get(&h.image, a(Area::Memory, Width::Word, 10, 0)), 0xABCD);
    assert_eq!(get(&h.image, a(Area::Memory, Width::Word, 11, 0)), 0x2200);
    assert_eq!(get(&h.image, a(Area::Memory, Width::Word, 12, 0)), 0x1102);
    assert_eq!(get(&h.image, a(Area::Output, Width::Bit, 3, 2)), 1);
    assert_eq!(get(&h.image, a(Area::Input, Width::Bit, 0, 0)), 0);
}

#[tokio::test]
async fn a_mapping_past_the_running_programs_table_is_out_of_range() {
    let mut h = Harness::connected(CONFIG, 480).await;
    set(&h.image, a(Area::Memory, Width::Word, 11, 0), 0xBEEF);
    // The running program's %MW table holds %MW0..%MW11: DB2 (%MW10..%MW19) reaches past it.
    let mut next: Box<OutputSnapshot> = bytemuck::zeroed_box();
    bytemuck::bytes_of_mut(&mut *next).copy_from_slice(bytemuck::bytes_of(&*h.image.outputs()));
    next.sizes.set(shared_abi::sizes::Table::IntMemory, 12);
    h.image.publish(next);
    let r = h
        .request(&read(&[
            item(4, 2, 2, DB, 0),  // DB2.DBW0..2 = %MW10..%MW11: inside
            item(4, 1, 2, DB, 32), // DB2.DBW4 = %MW12: past the table
            item(2, 3, 2, DB, 24), // DB2.DBB3..5: its last byte is %MW12's
        ]))
        .await;
    let expected: Vec<u8> = [vec![0xFF, 4, 0, 32, 0, 0, 0xBE, 0xEF], vec![0x05, 0, 0, 0], vec![0x05, 0, 0, 0]].concat();
    assert_eq!(r.data, expected);
    let before = h.image.cycle();
    let r = h
        .request(&write(&[
            (item(4, 1, 2, DB, 32), 4, 16, vec![0, 7]),       // %MW12: past the table
            (item(4, 1, 2, DB, 16), 4, 16, vec![0x12, 0x34]), // %MW11: inside
        ]))
        .await;
    assert_eq!(r.data, [0x05, 0xFF]);
    assert_eq!(h.image.cycle(), before + 1, "the good item written");
    assert_eq!(get(&h.image, a(Area::Memory, Width::Word, 11, 0)), 0x1234);
}

/// CONFIG with writes given up after 50 ms.
fn quick_timeout(config: &str) -> String {
    config.replacen(r#""server": {"#, r#""server": { "write_timeout_ms": 50,"#, 1)
}

#[tokio::test]
async fn a_write_the_plc_does_not_apply_fails_every_item() {
    let config = quick_timeout(CONFIG);
    // Queued but never applied (rt-core stalled), or never queued (its queue stayed full).
    for stall in [true, false] {
        let mut h = Harness::connected(&config, 480).await;
        let flag = if stall { &h.image.stall } else { &h.image.refuse };
        flag.store(true, Ordering::Release);
        let r =
            h.request(&write(&[(item(2, 1, 1, DB, 0), 4, 8, vec![1]), (item(2, 1, 9, DB, 0), 4, 8, vec![1])])).await;
        assert_eq!(r.data, [0x01, 0x0A], "stall {stall}: hardware fault, and the missing block still named");
        assert_eq!(get(&h.image, a(Area::Output, Width::Bit, 0, 0)), 0);
    }
}

/// A bool-mapped block as large as the image's %MX table, and PDU 960.
const BIG: &str = r#"{
  "server": { "pdu_size": 960 },
  "data_blocks": [ { "db_number": 7, "size_bytes": 1024, "mapping": { "type": "bool_memory", "start_buffer": 0 } } ]
}"#;

fn mx(byte: u16, bit: u8) -> IecAddress {
    a(Area::Memory, Width::Bit, byte, bit)
}

#[tokio::test]
async fn a_write_larger_than_the_write_queue_goes_in_whole_item_batches() {
    let mut h = Harness::connected(BIG, 960).await;
    // One item of 900 bytes: 7 200 bit writes, more than the 4 096 one batch may hold.
    let data: Vec<u8> = (0..900u32).map(|i| (i * 7 + 1) as u8).collect();
    let before = h.image.cycle();
    let r = h.request(&write(&[(item(2, 900, 7, DB, 0), 4, 900 * 8, data.clone())])).await;
    assert_eq!(r.data, [0xFF]);
    assert_eq!(h.image.cycle(), before + 2, "two batches: 4 096 writes, then 3 104");
    for (i, byte) in data.iter().enumerate() {
        for bit in 0..8 {
            assert_eq!(get(&h.image, mx(i as u16, bit)), ((byte >> bit) & 1) as u64, "%MX{i}.{bit}");
        }
    }
    // Two items of 400 bytes (3 200 writes each): a batch ends between them, not inside one.
    let before = h.image.cycle();
    let r = h
        .request(&write(&[
            (item(2, 400, 7, DB, 0), 4, 400 * 8, vec![0x0F; 400]),
            (item(2, 400, 7, DB, 400 * 8), 4, 400 * 8, vec![0xF0; 400]),
        ]))
        .await;
    assert_eq!(r.data, [0xFF, 0xFF]);
    assert_eq!(h.image.cycle(), before + 2);
    assert_eq!((get(&h.image, mx(399, 0)), get(&h.image, mx(400, 0)), get(&h.image, mx(400, 7))), (1, 0, 1));
}

/// The in-memory image, refusing every batch after the first `accepted` as a queue that
/// stays full does.
struct FirstBatchesOnly {
    inner: MemoryImage,
    accepted: AtomicUsize,
}

impl ImagePort for FirstBatchesOnly {
    fn cycle(&self) -> u64 {
        self.inner.cycle()
    }
    fn state(&self) -> Option<PlcState> {
        self.inner.state()
    }
    fn outputs(&self) -> Arc<OutputSnapshot> {
        self.inner.outputs()
    }
    fn read_inputs(&self, f: &mut dyn FnMut(&InputImage)) -> bool {
        self.inner.read_inputs(f)
    }
    fn update_inputs(&self, f: &mut dyn FnMut(&mut InputImage)) -> Result<(), PortError> {
        self.inner.update_inputs(f)
    }
    fn write(&self, writes: &[(IecAddress, u64)]) -> Result<WriteTicket, PortError> {
        match self.accepted.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)) {
            Ok(_) => self.inner.write(writes),
            Err(_) => Err(PortError::WriteQueueFull),
        }
    }
    fn wait_applied(&self, ticket: WriteTicket, timeout: Duration) -> PortFuture<'_, u64> {
        self.inner.wait_applied(ticket, timeout)
    }
    fn wait_cycle_after(&self, cycle: u64, timeout: Duration) -> PortFuture<'_, u64> {
        self.inner.wait_cycle_after(cycle, timeout)
    }
}

#[tokio::test]
async fn when_a_later_batch_fails_only_its_items_report_it() {
    let port = Arc::new(FirstBatchesOnly { inner: MemoryImage::zeroed(), accepted: AtomicUsize::new(1) });
    let svc = Service::new(S7Config::from_json(&quick_timeout(BIG)).unwrap(), port.clone());
    let mut session = Session::new(1);
    let mut out = Vec::new();
    for frame in [cr(0x0102, 0x0A), dt(&setup(960))] {
        session.on_frame(&svc, &frame[4..], &mut out).await.unwrap();
    }
    out.clear();
    let request = dt(&write(&[
        (item(2, 400, 7, DB, 0), 4, 400 * 8, vec![0xFF; 400]),
        (item(2, 400, 7, DB, 400 * 8), 4, 400 * 8, vec![0xFF; 400]),
    ]));
    session.on_frame(&svc, &request[4..], &mut out).await.unwrap();
    assert_eq!(replies(&out)[0].data, [0xFF, 0x01], "the first item was written, the second was not");
    let bits = |byte: usize| port.inner.outputs().image.bool_memory[byte][0];
    assert_eq!((bits(399), bits(400)), (1, 0));
}

#[tokio::test]
async fn every_truncation_of_every_request_is_answered_or_closes() {
    let requests = [
        setup(960),
        read(&[item(2, 3, 1, DB, 0), item(4, 1, 2, DB, 16), item(1, 1, 0, PE, 3)]),
        write(&[(item(2, 3, 2, DB, 0), 4, 24, vec![1, 2, 3]), (item(1, 1, 0, PA, 3), 3, 1, vec![1])]),
        szl(0x001C, 0),
        szl_next(1),
        job(&[0x29, 0, 0, 0, 0, 0, 9, b'P', b'_', b'P', b'R', b'O', b'G', b'R', b'A', b'M'], &[]),
    ];
    for pdu in &requests {
        let mut h = Harness::connected(CONFIG, 480).await;
        assert_eq!(h.send(&dt(pdu)).await.map(|r| r.len()), Ok(1), "{pdu:02X?} whole is answered");
        for n in 0..pdu.len() {
            let mut h = Harness::connected(CONFIG, 480).await;
            match h.send(&dt(&pdu[..n])).await {
                Ok(r) => {
                    assert!(r.len() <= 1, "{pdu:02X?} cut at {n}: {r:?}");
                    assert!(r.iter().all(|r| r.rosctr == 3 || r.rosctr == 7), "{pdu:02X?} cut at {n}: {r:?}");
                }
                Err(Close::Pdu(_)) => {}
                Err(other) => panic!("{pdu:02X?} cut at {n}: {other}"),
            }
        }
    }
}

#[tokio::test]
async fn malformed_requests_get_0x8500_and_the_connection_stays() {
    let mut h = Harness::connected(CONFIG, 480).await;
    // Item count says 2, one item present.
    let mut bad = read(&[item(2, 1, 1, DB, 0)]);
    bad[11] = 2;
    assert_eq!(h.request(&bad).await.error, 0x8500);
    // Write data shorter than announced.
    let mut w = write(&[(item(2, 2, 1, DB, 0), 4, 16, vec![1, 2])]);
    w[9] -= 1;
    w.pop();
    assert_eq!(h.request(&w).await.error, 0x8500);
    // Still serving.
    assert_eq!(h.request(&read(&[item(2, 1, 1, DB, 0)])).await.data[0], 0xFF);
}

#[tokio::test]
async fn plc_control_and_unknown_functions_are_refused_politely() {
    let mut h = Harness::connected(CONFIG, 480).await;
    let mut stop = vec![0x29, 0, 0, 0, 0, 0, 9];
    stop.extend_from_slice(b"P_PROGRAM");
    let r = h.request(&job(&stop, &[])).await;
    assert_eq!((r.rosctr, r.error, r.params.as_slice()), (3, 0x8104, &[0x29u8, 0][..]));
    assert_eq!(ImagePort::state(&*h.image), Some(PlcState::Running), "the PLC was not stopped");
    assert_eq!(h.request(&job(&[0x1D, 0], &[])).await.error, 0x8104);
}

#[tokio::test]
async fn szl_lists_longer_than_the_pdu_come_in_parts() {
    let mut h = Harness::connected(CONFIG, 240).await;
    let first = h.request(&szl(0x001C, 0)).await;
    assert_eq!(first.rosctr, 7);
    // params: ... seq, durn, last data unit (1: more follows), error.
    let (seq, more, err) = (first.params[7], first.params[9], u16::from_be_bytes([first.params[10], first.params[11]]));
    assert_eq!((more, err), (1, 0));
    assert_ne!(seq, 0);
    assert!(first.data.len() <= 240);
    let mut list = first.data[8..].to_vec();
    let next = h.request(&szl_next(seq)).await;
    assert_eq!(next.params[9], 0, "the last part");
    list.extend_from_slice(&next.data[4..]);
    assert_eq!(list.len(), 4 + 10 * 34);
    assert_eq!(&list[6..21], b"OpenPLC Runtime");
    // A continuation nobody started is an error, not a crash.
    let stale = h.request(&szl_next(seq)).await;
    assert_eq!(u16::from_be_bytes([stale.params[10], stale.params[11]]), 0xD401);
}

#[tokio::test]
async fn cpu_state_follows_the_plc() {
    let mut h = Harness::connected(CONFIG, 480).await;
    let run = h.request(&szl(0x0424, 0)).await;
    assert_eq!(run.data[8 + 7], 0x08);
    h.image.set_state(Some(PlcState::Stopped));
    let stop = h.request(&szl(0x0424, 0)).await;
    assert_eq!(stop.data[8 + 7], 0x04);
    let unknown = h.request(&szl(0x0232, 4)).await;
    assert_eq!((unknown.data.as_slice(), unknown.params[10]), (&[0x0Au8, 0, 0, 0][..], 0xD4));
}

#[tokio::test]
async fn small_tpdus_carry_replies_in_fragments_and_requests_may_come_in_fragments() {
    let mut h = Harness::from_json(CONFIG);
    h.send(&cr(0x0102, 0x07)).await.unwrap(); // 128-byte TPDUs
    h.send(&dt(&setup(480))).await.unwrap();
    let r = h.request(&read(&[item(2, 300, 7, DB, 0)])).await;
    assert_eq!(r.data.len(), 304, "one reply joined from three DT frames");
    // A request in two DT fragments.
    let pdu = read(&[item(2, 1, 1, DB, 0)]);
    let mut first = vec![2, 0xF0, 0x00];
    first.extend_from_slice(&pdu[..9]);
    let mut frames = tpkt(&first);
    frames.extend_from_slice(&dt(&pdu[9..]));
    let r = h.send(&frames).await.unwrap();
    assert_eq!(r[0].data[0], 0xFF);
}

#[tokio::test]
async fn a_disconnect_request_or_garbage_ends_the_session() {
    let mut h = Harness::connected(CONFIG, 480).await;
    assert_eq!(h.send(&tpkt(&[6, 0x80, 0, 1, 0, 1, 0])).await.err(), Some(Close::Disconnect));
    let mut h = Harness::connected(CONFIG, 480).await;
    assert!(matches!(h.send(&dt(&[0x72, 1, 0, 0])).await, Err(Close::Pdu(_))), "S7comm-plus is not served");
    let mut h = Harness::connected(CONFIG, 480).await;
    assert!(matches!(h.send(&cr(0x0102, 0x0A)).await, Err(Close::Unexpected(_))));
}
