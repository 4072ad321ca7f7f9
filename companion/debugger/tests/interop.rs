//! The debugger against a real openplc-rt, driven by the Editor's own Socket.IO client
//! library (socket.io-client 4.x on Node) and by python-socketio.
//!
//! Needs `cargo build -p rt-core` (same target dir) and scripts/test-deps.

mod support;

use openplc_debugger::Family;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

fn fixture_server(dir: &tempfile::TempDir) -> Server {
    let so = build_fixture(dir.path(), FIXTURE_PERIOD_NS);
    Server::start(Some(&so), Family::FlatIndex)
}

fn data_bytes(reply: &Value) -> Vec<u8> {
    assert_eq!(reply["success"], true, "expected a PDU, got {reply}");
    let text = reply["data"].as_str().expect("data");
    assert!(!text.starts_with(' ') && !text.ends_with(' ') && !text.contains("  "), "spacing of {text:?}");
    assert_eq!(text, text.to_uppercase(), "upper-case hex");
    text.split(' ').map(|t| u8::from_str_radix(t, 16).expect("two hex digits")).collect()
}

fn poll_ok(c: &mut Client, indices: &[u16], types: &[&str]) -> Value {
    let r = c.poll(indices, types);
    assert_eq!(r["success"], true, "{:?} poll: {r}", c.kind);
    r
}

fn value(r: &Value, index: u16) -> String {
    r["values"][index.to_string()].as_str().unwrap_or_else(|| panic!("no value for {index} in {r}")).to_string()
}

/// The Editor's display of a MatIEC TIME `ticks * period`.
fn time_text(ns: u64) -> String {
    let units = [
        (86_400_000_000_000u64, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    let mut left = ns;
    let mut parts = vec![];
    for (n, u) in units {
        if left / n > 0 {
            parts.push(format!("{}{u}", left / n));
        }
        left %= n;
    }
    if parts.is_empty() { "0s".into() } else { parts[..parts.len().min(2)].concat() }
}

#[test]
fn connect_needs_a_valid_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = fixture_server(&dir);
    for kind in KINDS {
        drop(Client::connected(kind, &server.url, ADMIN));
        for token in [Value::Null, json!("not-a-token"), json!("")] {
            let mut c = Client::spawn(kind);
            let r = c.call(json!({"op": "connect", "url": server.url, "token": token}));
            assert_eq!(r["ok"], false, "{kind:?} with token {token}: {r}");
            if kind == Kind::Node {
                // socket.io-client hands the server's connect_error message to the app.
                assert!(r["error"].as_str().unwrap_or("").starts_with("Unauthorized"), "{r}");
            }
        }
    }
    // Upstream also takes the token from the query string.
    let mut c = Client::spawn(Kind::Node);
    let r = c.call(json!({"op": "connect", "url": server.url, "token": ADMIN, "query": true}));
    assert_eq!(r["ok"], true, "{r}");
}

#[test]
fn md5_reads_like_the_editor_expects() {
    let dir = tempfile::tempdir().unwrap();
    let server = fixture_server(&dir);
    for kind in KINDS {
        let mut c = Client::connected(kind, &server.url, ADMIN);
        let r = c.call(json!({"op": "md5"}));
        assert_eq!(r, json!({"success": true, "md5": FIXTURE_MD5}), "{kind:?}");
        // Exactly `45 7E` + 32 ASCII characters: nothing after the MD5 (Editor ≤ 4.1.4).
        let b = data_bytes(&c.cmd("45 DE AD 00 00"));
        assert_eq!(b.len(), 34);
        assert_eq!(&b[..2], &[0x45, 0x7E]);
        assert_eq!(&b[2..], FIXTURE_MD5.as_bytes());
    }
}

#[test]
fn demo_bundle_every_base_type_decodes_as_the_editor_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_demo(dir.path());
    let server = Server::start(Some(&so), Family::FlatIndex);
    let types = demo_types();
    assert_eq!(types.len(), 33, "demo debug.c: {types:?}");
    let type_refs: Vec<&str> = types.iter().map(String::as_str).collect();
    let indices: Vec<u16> = (0..types.len() as u16).collect();
    let idx = |name: &str| types.iter().position(|t| t == name).unwrap_or_else(|| panic!("no {name}")) as u16;
    for kind in KINDS {
        let mut c = Client::connected(kind, &server.url, ADMIN);
        let md5 = c.call(json!({"op": "md5"}));
        assert_eq!(md5["md5"], demo_md5(), "{kind:?}: MD5 of the bundle's program.st");

        let first = poll_ok(&mut c, &indices, &type_refs);
        std::thread::sleep(Duration::from_millis(50));
        let second = poll_ok(&mut c, &indices, &type_refs);
        for r in [&first, &second] {
            assert_eq!(r["lastIndex"], 32, "{kind:?}: every variable fits one frame");
            // The decoder consumed exactly the data: no TIME misalignment.
            assert_eq!(r["consumed"], r["size"], "{kind:?}: {r}");
            assert_eq!(r["values"].as_object().map(|o| o.len()), Some(33));
        }
        let t1 = first["tick"].as_u64().unwrap();
        let t2 = second["tick"].as_u64().unwrap();
        assert!(t2 > t1, "{kind:?}: tick advances ({t1} → {t2})");
        let counter = |r: &Value| value(r, 0).parse::<u64>().unwrap();
        assert!(counter(&second) > counter(&first), "{kind:?}: the counter advances");
        // Values whose display is fixed by the program.
        assert_eq!(value(&first, 31), "500ms", "{kind:?}: preset T#500ms ({})", types[31]);
        assert_eq!(value(&first, 32), "\"OpenPLC\"", "{kind:?}: text");
        assert_eq!(value(&first, 23), "1d", "{kind:?}: TON PT = T#1d");
        // Each scan of 10 ms adds 0.5 to v_real; its display is a 6-decimal float.
        let v_real: f64 = value(&second, idx("REAL")).parse().unwrap();
        assert!(v_real > 0.0 && value(&second, idx("REAL")).ends_with("0000"), "{kind:?}: {v_real}");
        // Elapsed time: a positive duration that grows.
        assert_ne!(value(&second, 30), "0s");
        let _ = (idx("LINT"), idx("ULINT"), idx("LREAL"), idx("LWORD"), idx("SINT"), idx("DWORD"));
    }
}

#[test]
fn fixture_poll_of_sixty_indices_is_fresh_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let server = fixture_server(&dir);
    // The fixture has 7 variables; 60 indices repeat them (the Editor's batch size).
    let indices: Vec<u16> = (0..60).map(|i| i % 7).collect();
    let mut hex = format!("44 00 {:02X}", indices.len());
    for i in &indices {
        hex.push_str(&format!(" 00 {i:02X}"));
    }
    // Wire sizes: TIME goes out as 8 bytes, not the program's 16.
    let sizes = [2usize, 1, 1, 4, 8, 8, 127];
    for kind in KINDS {
        let mut c = Client::connected(kind, &server.url, ADMIN);
        let mut last_tick = 0;
        for round in 0..10 {
            let before = server.published_tick();
            let started = Instant::now();
            let b = data_bytes(&c.cmd(&hex));
            assert!(started.elapsed() < Duration::from_millis(500));
            assert_eq!(&b[..2], &[0x44, 0x7E]);
            assert_eq!(u16::from_be_bytes([b[2], b[3]]), 59 % 7, "last = debug index of the last value");
            let tick = u32::from_be_bytes(b[4..8].try_into().unwrap()) as u64;
            assert!(tick > before, "{kind:?} round {round}: values from tick {tick}, already published {before}");
            assert!(tick > last_tick, "{kind:?}: the tick advances between polls");
            last_tick = tick;
            let size = u16::from_be_bytes([b[8], b[9]]) as usize;
            assert_eq!(size, indices.iter().map(|&i| sizes[i as usize]).sum::<usize>());
            assert_eq!(b.len(), 10 + size);
            // Every repetition carries the same scan's values.
            let mut at = 10;
            let mut first: Vec<&[u8]> = vec![];
            for (n, &i) in indices.iter().enumerate() {
                let v = &b[at..at + sizes[i as usize]];
                if n < 7 {
                    first.push(v);
                } else {
                    assert_eq!(v, first[i as usize], "{kind:?}: index {i} at position {n}");
                }
                at += sizes[i as usize];
            }
            let counter = u16::from_le_bytes([first[0][0], first[0][1]]) as u64;
            assert_eq!(f32::from_le_bytes(first[3].try_into().unwrap()), counter as f32 / 2.0);
            assert_eq!(i64::from_le_bytes(first[4].try_into().unwrap()), -(counter as i64));
            let ns = counter * FIXTURE_PERIOD_NS;
            let sec = i32::from_le_bytes(first[5][..4].try_into().unwrap()) as u64;
            let nsec = i32::from_le_bytes(first[5][4..].try_into().unwrap()) as u64;
            assert_eq!(sec * 1_000_000_000 + nsec, ns, "TIME as i32 s + i32 ns");
            assert_eq!(&first[6][..8], &[7, b'r', b't', b'-', b'c', b'o', b'r', b'e']);
            std::thread::sleep(Duration::from_millis(50));
        }
        // The Editor's decoding of the seven distinct variables.
        let r = poll_ok(&mut c, &[0, 1, 2, 3, 4, 5, 6], &FIXTURE_TYPES);
        let counter: u64 = value(&r, 0).parse().unwrap();
        assert_eq!(value(&r, 3), format!("{:.6}", counter as f32 / 2.0), "{kind:?}: REAL = counter / 2");
        assert_eq!(value(&r, 4), format!("-{counter}"), "{kind:?}: LINT = -counter");
        assert_eq!(value(&r, 5), time_text(counter * FIXTURE_PERIOD_NS), "{kind:?}: TIME = counter × period");
        assert_eq!(value(&r, 6), "\"rt-core\"");
        assert_eq!(value(&r, 1), "FALSE");
        assert_eq!(r["consumed"], r["size"]);
    }
}

#[test]
fn forcing_qx_and_real_shows_in_reads_and_outputs_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let server = fixture_server(&dir);
    let all: Vec<u16> = (0..7).collect();
    for kind in KINDS {
        let mut c = Client::connected(kind, &server.url, ADMIN);
        c.call(json!({"op": "md5"}));
        assert_eq!(server.output("%QX0.0"), 0, "the program copies %IX0.0 = 0");
        let r = c.call(json!({"op": "force", "index": 1, "type": "BOOL", "value": "TRUE"}));
        assert_eq!(r["success"], true, "{kind:?} force %QX0.0: {r}");
        let r = c.call(json!({"op": "force", "index": 3, "type": "REAL", "value": "1234.5"}));
        assert_eq!(r["success"], true, "{kind:?} force REAL: {r}");
        // The program writes both every scan; the forces hold over many scans.
        let mut ticks = vec![];
        for _ in 0..5 {
            let r = poll_ok(&mut c, &all, &FIXTURE_TYPES);
            assert_eq!(value(&r, 1), "TRUE", "{kind:?}");
            assert_eq!(value(&r, 3), "1234.500000", "{kind:?}");
            ticks.push(r["tick"].as_u64().unwrap());
            assert_eq!(server.output("%QX0.0"), 1, "{kind:?}: the forced value reaches the output image");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(ticks.windows(2).all(|w| w[1] > w[0]), "the program kept scanning: {ticks:?}");

        for index in [1, 3] {
            let r = c.call(json!({"op": "release", "index": index}));
            assert_eq!(r["success"], true, "{kind:?} release {index}: {r}");
        }
        let r = poll_ok(&mut c, &all, &FIXTURE_TYPES);
        let counter: u64 = value(&r, 0).parse().unwrap();
        assert_eq!(value(&r, 1), "FALSE", "{kind:?}: released output follows the program again");
        assert_eq!(value(&r, 3), format!("{:.6}", counter as f32 / 2.0), "{kind:?}: released REAL");
        wait_for("%QX0.0 back to 0", Duration::from_secs(2), || (server.output("%QX0.0") == 0).then_some(()));
    }
    let logs = server.log_lines();
    let forced = logs.iter().filter(|l| l.contains("user 'admin' forced debug variable 1")).count();
    let released = logs.iter().filter(|l| l.contains("user 'admin' released debug variable 3")).count();
    assert_eq!((forced, released), (2, 2), "every force and release is logged with the user: {logs:#?}");
}

#[test]
fn viewers_monitor_but_cannot_force() {
    let dir = tempfile::tempdir().unwrap();
    let server = fixture_server(&dir);
    for kind in KINDS {
        let mut c = Client::connected(kind, &server.url, VIEWER);
        poll_ok(&mut c, &[0, 1], &["UINT", "BOOL"]);
        let r = c.call(json!({"op": "force", "index": 1, "type": "BOOL", "value": "TRUE"}));
        assert_eq!(r["success"], false, "{kind:?}: {r}");
        assert!(r["error"].as_str().unwrap().starts_with("Forbidden"), "{r}");
        let r = c.call(json!({"op": "release", "index": 1}));
        assert_eq!(r["success"], false, "{kind:?}: {r}");
        assert_eq!(server.output("%QX0.0"), 0);
    }
    assert!(server.log_lines().iter().any(|l| l.contains("user 'viewer' may not force")), "{:#?}", server.log_lines());
}

#[test]
fn two_hundred_pipelined_commands_get_one_reply_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = fixture_server(&dir);
    // Polls of 1..=7 variables (their data sizes tell them apart) between other commands.
    let sizes = [2usize, 1, 1, 4, 8, 8, 127];
    let mut hexes = vec![];
    type Check = Box<dyn Fn(&Value) -> bool>;
    let mut expect: Vec<Check> = vec![];
    for i in 0..200usize {
        match i % 5 {
            0..=2 => {
                let n = i % 7 + 1;
                let mut h = format!("44 00 {n:02X}");
                for v in 0..n {
                    h.push_str(&format!(" 00 {v:02X}"));
                }
                hexes.push(h);
                let size: usize = sizes[..n].iter().sum();
                expect.push(Box::new(move |r: &Value| {
                    let b = data_bytes(r);
                    b[..2] == [0x44, 0x7E] && b.len() == 10 + size && b[3] as usize == n - 1
                }));
            }
            3 => {
                hexes.push("45 DE AD 00 00".into());
                expect.push(Box::new(|r: &Value| data_bytes(r).len() == 34));
            }
            _ => {
                hexes.push("41".into());
                expect.push(Box::new(|r: &Value| data_bytes(r) == [0x41, 0x00, 0x07]));
            }
        }
    }
    for kind in KINDS {
        let mut c = Client::connected(kind, &server.url, ADMIN);
        let r = c.call(json!({"op": "pipeline", "hexes": hexes}));
        let replies = r["replies"].as_array().expect("replies");
        assert_eq!(replies.len(), 200, "{kind:?}: one reply per command");
        assert_eq!(r["extra"], 0, "{kind:?}: no command answered twice");
        for (i, (reply, ok)) in replies.iter().zip(&expect).enumerate() {
            assert!(ok(reply), "{kind:?}: reply {i} does not answer `{}`: {reply}", hexes[i]);
        }
    }
}

#[test]
fn two_clients_polling_different_sets_are_both_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = fixture_server(&dir);
    let mut a = Client::connected(Kind::Node, &server.url, ADMIN);
    let mut b = Client::connected(Kind::Python, &server.url, VIEWER);
    let polls_a: Vec<String> = (0..40).map(|_| "44 00 02 00 00 00 03".to_string()).collect();
    let polls_b: Vec<String> = (0..40).map(|_| "44 00 03 00 04 00 05 00 06".to_string()).collect();
    // Both pipelines run at the same time against the one shared watch list.
    a.send(&json!({"op": "pipeline", "hexes": polls_a}));
    b.send(&json!({"op": "pipeline", "hexes": polls_b}));
    let (ra, rb) = (a.receive(), b.receive());
    let mut ticks = vec![];
    for (r, size, last) in [(&ra, 2 + 4, 3u8), (&rb, 8 + 8 + 127, 6)] {
        let replies = r["replies"].as_array().unwrap();
        assert_eq!(replies.len(), 40);
        for reply in replies {
            let bytes = data_bytes(reply);
            assert_eq!(bytes.len(), 10 + size, "{reply}");
            assert_eq!(bytes[3], last);
            ticks.push(u32::from_be_bytes(bytes[4..8].try_into().unwrap()));
        }
    }
    assert!(server.debugger.watched() >= 5, "both sets are in the shared list");
    // Interleaved single polls from each still see a moving counter.
    let t1 = poll_ok(&mut a, &[0], &["UINT"])["tick"].as_u64().unwrap();
    let t2 = poll_ok(&mut b, &[0], &["UINT"])["tick"].as_u64().unwrap();
    assert!(t2 > t1);
}

#[test]
fn malformed_pdus_get_the_protocols_error_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let server = fixture_server(&dir);
    let cases: [(&str, Result<&str, &str>); 20] = [
        ("44", Ok("44 81")),
        ("44 00 00", Ok("44 81")),
        ("44 00 02 00 01", Ok("44 81")),
        ("44 01 01", Ok("44 82")),
        ("44 00 01 00 07", Ok("44 81")),
        ("44 00 02 00 00 FF FF", Ok("44 81")),
        ("42 00 07 01 00 01 01", Ok("42 81")),
        ("42 00 01 01 00 04 3F", Ok("42 81")),
        ("42 00", Ok("42 81")),
        ("43 00 05 00 01", Ok("43 81")),
        ("43 00 00 00 07", Ok("43 81")),
        ("45 12 34 00 00", Ok("45 81")),
        ("45", Ok("45 81")),
        ("4B 01", Ok("CB 01")),
        ("49 00 62 AB", Ok("49 85")),
        ("48", Ok("48 85")),
        ("4A", Ok("4A 85")),
        ("zz", Err("Malformed command")),
        ("4", Err("Malformed command")),
        ("", Err("Empty command")),
    ];
    for kind in KINDS {
        let mut c = Client::connected(kind, &server.url, ADMIN);
        for (hex, want) in cases {
            let r = c.cmd(hex);
            match want {
                Ok(data) => assert_eq!(r, json!({"success": true, "data": data}), "{kind:?} `{hex}`"),
                Err(prefix) => {
                    assert_eq!(r["success"], false, "{kind:?} `{hex}`: {r}");
                    assert!(r["error"].as_str().unwrap().starts_with(prefix), "{kind:?} `{hex}`: {r}");
                }
            }
        }
        // A wrong-shaped event payload still gets its one reply, and the session goes on.
        let r = c.cmd("41");
        assert_eq!(r, json!({"success": true, "data": "41 00 07"}));
        // A 0x43 range and a release through the flat family.
        let b = data_bytes(&c.cmd("43 00 00 00 02"));
        assert_eq!((b[0], b[1], b[3], b.len()), (0x43, 0x7E, 2, 10 + 2 + 1 + 1));
    }
}

#[test]
fn array_element_family_with_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_fixture(dir.path(), FIXTURE_PERIOD_NS);
    // The fixture's generator is neither MatIEC nor STruC++: the configured default decides.
    let server = Server::start(Some(&so), Family::ArrayElement);
    let mut c = Client::connected(Kind::Node, &server.url, ADMIN);
    assert_eq!(c.cmd("41"), json!({"success": true, "data": "41 01 7E 00 07"}));
    let md5 = data_bytes(&c.cmd("45 DE AD 00 00"));
    assert_eq!(md5.len(), 36);
    assert_eq!(&md5[2..34], FIXTURE_MD5.as_bytes());
    assert_eq!(&md5[34..], &0xDEADu16.to_ne_bytes(), "native-order sentinel");
    // (0,0) counter, (5,0) unknown → skipped, (0,6) STRING: last = request position 2.
    let b = data_bytes(&c.cmd("44 00 03 00 00 00 05 00 00 00 00 06"));
    assert_eq!(&b[..4], &[0x44, 0x7E, 0x00, 0x02]);
    assert_eq!(u16::from_be_bytes([b[8], b[9]]), 2 + 127);
    assert_eq!(&b[12..20], &[7, b'r', b't', b'-', b'c', b'o', b'r', b'e']);
    // Force (0,1) = %QX0.0 with a native-order value, then release.
    assert_eq!(c.cmd("42 00 00 01 01 00 01 01"), json!({"success": true, "data": "42 7E"}));
    wait_for("forced %QX0.0", Duration::from_secs(2), || (server.output("%QX0.0") == 1).then_some(()));
    assert_eq!(c.cmd("42 00 00 01 00 00 01 00"), json!({"success": true, "data": "42 7E"}));
    assert_eq!(c.cmd("42 03 00 01 01 00 01 01"), json!({"success": true, "data": "42 81"}));
    assert_eq!(c.cmd("44 00 00"), json!({"success": true, "data": "44 81"}));
    assert_eq!(c.cmd("44 04 01"), json!({"success": true, "data": "44 82"}));
    wait_for("released %QX0.0", Duration::from_secs(2), || (server.output("%QX0.0") == 0).then_some(()));
}

#[test]
fn without_a_program_or_a_runtime() {
    let flat = Server::start(None, Family::FlatIndex);
    let mut c = Client::connected(Kind::Node, &flat.url, ADMIN);
    assert_eq!(c.cmd("45 DE AD 00 00"), json!({"success": false, "error": "No PLC program loaded"}));
    assert_eq!(c.cmd("44 00 01 00 00"), json!({"success": false, "error": "No PLC program loaded"}));
    let pairs = Server::start(None, Family::ArrayElement);
    let mut p = Client::connected(Kind::Python, &pairs.url, ADMIN);
    for (hex, want) in [("41", "41 83"), ("45 DE AD 00 00", "45 83"), ("44 00 01 00 00 00", "44 83")] {
        assert_eq!(p.cmd(hex), json!({"success": true, "data": want}));
    }
    drop(p);
    let mut flat = flat;
    flat.rt.kill();
    let r = c.cmd("41");
    assert_eq!(r["success"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("not running"), "{r}");
}
