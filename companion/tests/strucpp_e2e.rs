//! A STruC++ bundle (OpenPLC Editor 4.2 and later) through the real companion: the
//! builder's hand-written fixture zipped as the Editor zips it, uploaded over HTTPS, built
//! with the C++ adapter, loaded and run by rt-core, and debugged with the (array, element)
//! PDUs that Editor sends (0x41 array counts, 0x44 list reads, 0x42 force / release, 0x45 MD5
//! with the 0xDEAD sentinel), over Socket.IO with the Editor's client library
//! (socket.io-client on Node) and python-socketio.

#[path = "../debugger/tests/support/mod.rs"]
mod clients;
mod common;

use clients::{Client, KINDS};
use common::{Runtime, wait_for};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
/// program.st's MD5 (defines.h, debug-map.json).
const MD5: &str = "e2895d32c3671083340f0ee26e3d1516";
const LEAVES: u16 = 27;

fn fixture() -> PathBuf {
    common::repo_root().join("companion/builder/tests/fixtures/strucpp-demo")
}

/// Reads an output point with the control tool, as an observer beside the companion.
fn output(rt: &Runtime, addr: &str) -> String {
    let out = Command::new(common::rt_binary()).arg("--shm").arg(&rt.shm).args(["read", addr]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Sends one PDU and returns the reply's bytes (panics on `success: false`).
fn pdu(c: &mut Client, hex: &str) -> Vec<u8> {
    let reply = c.cmd(hex);
    assert_eq!(reply["success"], true, "{hex}: {reply}");
    let data = reply["data"].as_str().unwrap_or_else(|| panic!("{hex}: {reply}"));
    assert!(!data.starts_with(' ') && !data.ends_with(' ') && !data.contains("  "), "{data:?}");
    data.split(' ').map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

/// A 0x44 reply: (last, tick, data).
fn list(c: &mut Client, pairs: &[(u8, u16)]) -> (u16, u32, Vec<u8>) {
    let mut hex = format!("44 {:02X} {:02X}", pairs.len() >> 8, pairs.len() & 0xFF);
    for (array, element) in pairs {
        hex.push_str(&format!(" {array:02X} {:02X} {:02X}", element >> 8, element & 0xFF));
    }
    let r = pdu(c, &hex);
    assert_eq!(&r[..2], [0x44, 0x7E], "{hex}: {r:02X?}");
    let last = u16::from_be_bytes([r[2], r[3]]);
    let tick = u32::from_be_bytes([r[4], r[5], r[6], r[7]]);
    let size = u16::from_be_bytes([r[8], r[9]]) as usize;
    assert_eq!(r.len(), 10 + size, "{r:02X?}");
    (last, tick, r[10..].to_vec())
}

fn force(c: &mut Client, array: u8, element: u16, value: &[u8]) -> Vec<u8> {
    let mut hex =
        format!("42 {array:02X} {:02X} {:02X} 01 {:02X} {:02X}", element >> 8, element & 0xFF, 0, value.len());
    for b in value {
        hex.push_str(&format!(" {b:02X}"));
    }
    pdu(c, &hex)
}

fn release(c: &mut Client, array: u8, element: u16) -> Vec<u8> {
    pdu(c, &format!("42 {array:02X} {:02X} {:02X} 00 00 01 00", element >> 8, element & 0xFF))
}

fn iec_string(text: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; 127];
    bytes[0] = text.len() as u8;
    bytes[1..=text.len()].copy_from_slice(text);
    bytes
}

#[test]
fn a_strucpp_bundle_uploads_runs_and_debugs_with_array_element_pdus() {
    // `dual`: the setting an Editor >= 4.2 needs to upload (it checks /api/version >= 4.1.0)
    // while Editor <= 4.1.4 still connects.
    let rt = Runtime::start(&["--editor-compat", "dual"]);
    let token = rt.bootstrap("admin", "admin-pass");
    let zip = rt.dir.path().join("program.zip");
    common::zip_bundle_dir(&fixture(), &zip, &["README.md"]);
    assert_eq!(rt.upload(&zip, &token).status, 200);
    let build = rt.wait_build(&token);
    assert_eq!(build["status"], "SUCCESS", "{build}");
    let logs = build["logs"].to_string();
    assert!(logs.contains("STruC++"), "{logs}");
    assert!(logs.contains("Compiling generated_debug.cpp"), "{logs}");
    rt.wait_status(&token, "STATUS:RUNNING");
    let status = rt.get("/status", &token).json();
    assert_eq!(status["status"], "STATUS:RUNNING", "{status}");

    // The REST monitor names the variables from debug-map.json, without the Editor.
    let list = rt.get("/variables", &token).json();
    assert_eq!(list["variables"].as_array().map(Vec::len), Some(LEAVES as usize));
    assert_eq!(list["variables"][0], serde_json::json!({"index": 0, "name": "INSTANCE0.COUNTER", "type": "UINT"}));
    let values = rt.get("/variables/values?names=instance0.preset,INSTANCE0.TEXT", &token).json();
    assert_eq!(values["values"][0]["value"], "T#500ms", "{values:#}");
    assert_eq!(values["values"][1]["value"], "OpenPLC", "{values:#}");

    let url = format!("https://127.0.0.1:{}", rt.port);
    for kind in KINDS {
        debug_session(&rt, &mut Client::connected(kind, &url, &token));
    }
    let log = rt.log();
    assert!(log.contains("debugger: user 'admin' forced"), "forces are logged with the user's name");
}

/// What the Editor does in a debug session, with checks of every answer.
fn debug_session(rt: &Runtime, c: &mut Client) {
    let kind = c.kind;

    // 0x45: MD5, then 0xDEAD in the target's (little-endian) order.
    let md5 = pdu(c, "45 DE AD 00 00");
    assert_eq!(&md5[..2], [0x45, 0x7E]);
    assert_eq!(std::str::from_utf8(&md5[2..34]).unwrap(), MD5);
    assert_eq!(&md5[34..], 0xDEADu16.to_ne_bytes(), "the sentinel, native order");

    // 0x41: one array of 27 leaves.
    assert_eq!(pdu(c, "41"), [0x41, 0x01, 0x7E, 0x00, LEAVES as u8]);

    // 0x44: COUNTER (0,0), an unknown pair (skipped), TEXT (0,26), ELAPSED (0,24).
    let (last, tick, data) = list(c, &[(0, 0), (1, 0), (0, 26), (0, 24)]);
    assert_eq!(last, 3, "the position of the last pair served");
    assert_eq!(data.len(), 2 + 127 + 8, "unknown pairs take no room");
    let counter = u16::from_le_bytes([data[0], data[1]]);
    assert!(counter > 0 && tick > 0, "the program runs: counter {counter}, tick {tick}");
    assert_eq!(&data[2..129], iec_string(b"OpenPLC"));
    let elapsed = i64::from_le_bytes(data[129..137].try_into().unwrap());
    assert_eq!(elapsed % 10_000_000, 0, "TIME: 8 bytes of nanoseconds, on the 10 ms grid ({elapsed})");
    wait_for("the counter to advance", T, || {
        let (_, later_tick, d) = list(c, &[(0, 0)]);
        (later_tick > tick && u16::from_le_bytes([d[0], d[1]]) != counter).then_some(())
    });

    // 0x42: force %QX0.0 (DOUT0, (0,2)): in reads and in the output image; values native.
    assert_eq!(force(c, 0, 2, &[1]), [0x42, 0x7E]);
    wait_for("forced %QX0.0 in the output image", T, || (output(rt, "%QX0.0") == "%QX0.0 = 1").then_some(()));
    // V_REAL (0,14) to 1234.5, TEXT (0,26) to 'abc' (length + bytes, unpadded).
    assert_eq!(force(c, 0, 14, &1234.5f32.to_le_bytes()), [0x42, 0x7E]);
    assert_eq!(force(c, 0, 26, b"\x03abc"), [0x42, 0x7E]);
    for _ in 0..3 {
        let (last, _, data) = list(c, &[(0, 2), (0, 14), (0, 26)]);
        assert_eq!(last, 2);
        assert_eq!(data[0], 1, "DOUT0 forced");
        assert_eq!(f32::from_le_bytes(data[1..5].try_into().unwrap()), 1234.5, "the force holds against the program");
        assert_eq!(&data[5..], iec_string(b"abc"));
    }
    for element in [2, 14, 26] {
        assert_eq!(release(c, 0, element), [0x42, 0x7E]);
    }
    wait_for("%QX0.0 released", T, || (output(rt, "%QX0.0") == "%QX0.0 = 0").then_some(()));
    let after = wait_for("V_REAL to move again", T, || {
        let (_, _, d) = list(c, &[(0, 14)]);
        let v = f32::from_le_bytes(d[..4].try_into().unwrap());
        (v != 1234.5).then_some(v)
    });
    assert!(after > 1234.5, "V_REAL continues from the forced value ({after})");

    // The program never writes TEXT. Released, it shows the forced text (STruC++ releases
    // that write it through) or the text from before the force (STruC++ 0.6.1): put the
    // initial text back for the next session.
    let text = list(c, &[(0, 26)]).2;
    assert!(text == iec_string(b"abc") || text == iec_string(b"OpenPLC"), "{kind:?}: {text:?}");
    assert_eq!(force(c, 0, 26, b"\x07OpenPLC"), [0x42, 0x7E]);
    assert_eq!(release(c, 0, 26), [0x42, 0x7E]);

    // Errors keep the protocol's status bytes.
    assert_eq!(force(c, 1, 0, &[1]), [0x42, 0x81], "{kind:?}: no array 1");
    assert_eq!(force(c, 0, LEAVES, &[1]), [0x42, 0x81], "{kind:?}: no element 27");
}
