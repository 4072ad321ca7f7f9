//! The protocol, frame by frame, over an in-memory image: what each request gets back.

mod support;

use openplc_s7::session::Close;
use openplc_s7::wire::iso::IsoError;
use openplc_s7::{S7Image, WriteError};
use shared_abi::image::{Area, IecAddress, Width};
use shared_abi::layout::PlcState;
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
    h.image.set(a(Area::Output, Width::Bit, 2, 5), 1);
    h.image.set(a(Area::Memory, Width::Word, 11, 0), 0xBEEF);
    h.image.set(a(Area::Input, Width::DWord, 1, 0), 0x0102_0304);
    h.image.set(a(Area::Input, Width::Bit, 0, 3), 1);
    h.image.set(a(Area::Output, Width::Bit, 7, 0), 1);
    h.image.set(a(Area::Memory, Width::Word, 3, 0), 0x1234);
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
    h.image.set(a(Area::Memory, Width::Word, 12, 0), 0x1100);
    let before = h.image.batches();
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
    assert_eq!(h.image.batches(), before + 1, "every good item in one batch");
    assert_eq!(h.image.get(a(Area::Output, Width::Bit, 1, 0)), 1);
    assert_eq!(h.image.get(a(Area::Output, Width::Bit, 1, 1)), 0);
    assert_eq!(h.image.get(a(Area::Output, Width::Bit, 1, 7)), 1);
    assert_eq!(h.image.get(a(Area::Memory, Width::Word, 10, 0)), 0xABCD);
    assert_eq!(h.image.get(a(Area::Memory, Width::Word, 11, 0)), 0x2200);
    assert_eq!(h.image.get(a(Area::Memory, Width::Word, 12, 0)), 0x1102);
    assert_eq!(h.image.get(a(Area::Output, Width::Bit, 3, 2)), 1);
    assert_eq!(h.image.get(a(Area::Input, Width::Bit, 0, 0)), 0);
}

#[tokio::test]
async fn a_write_the_plc_does_not_apply_fails_every_item() {
    let mut h = Harness::connected(CONFIG, 480).await;
    h.image.fail_writes(Some(WriteError::Timeout));
    let r = h.request(&write(&[(item(2, 1, 1, DB, 0), 4, 8, vec![1]), (item(2, 1, 9, DB, 0), 4, 8, vec![1])])).await;
    assert_eq!(r.data, [0x01, 0x0A]);
    assert_eq!(h.image.get(a(Area::Output, Width::Bit, 0, 0)), 0);
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
    assert_eq!(h.image.state(), PlcState::Running, "the PLC was not stopped");
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
    h.image.set_state(PlcState::Stopped);
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
