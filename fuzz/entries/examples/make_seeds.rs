//! Writes the hand-made seed inputs of every fuzz target into `fuzz/seeds/<target>/`:
//! real Editor-shaped files (the demo bundle, the STruC++ fixture, the Editor's Modbus
//! configurations), real PDUs and frames, and real postcard-encoded ring messages.
//!
//!     cargo run -p openplc-fuzz-entries --example make_seeds
//!
//! Deterministic: running it again rewrites the same files. The fuzzer's own finds live in
//! `fuzz/corpus/<target>/` (minimised by `scripts/fuzz`); the seeds are never minimised
//! away, so every real-world shape stays a replayed test.

use shared_abi::image::IecAddress;
use shared_abi::msg::{Command, CommandEnvelope, Event, ImageWrite, LogLevel, LogLine, bounded};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("fuzz/seeds");
    let mut seeds = Seeds { dir, written: 0 };
    upload_zip(&mut seeds, &root);
    bundle_files(&mut seeds, &root);
    debug_pdu(&mut seeds);
    debug_values(&mut seeds);
    modbus_conf(&mut seeds, &root);
    modbus_tcp(&mut seeds);
    s7_request(&mut seeds);
    plugins_conf(&mut seeds);
    settings_json(&mut seeds);
    image_conf(&mut seeds);
    rest_bodies(&mut seeds);
    shm_messages(&mut seeds);
    monitor_input(&mut seeds);
    println!("{} seed files written under fuzz/seeds/", seeds.written);
}

struct Seeds {
    dir: PathBuf,
    written: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.dir.join(target);
        fs::create_dir_all(&dir).expect("seed directory");
        fs::write(dir.join(name), bytes).expect("seed file");
        self.written += 1;
    }
}

// ---- upload_zip ----

/// Files of a directory, relative, sorted, without our READMEs.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut items: Vec<_> = fs::read_dir(dir).expect("bundle dir").flatten().map(|e| e.path()).collect();
        items.sort();
        for path in items {
            if path.is_dir() {
                walk(base, &path, out);
            } else if path.file_name().is_some_and(|n| n != "README.md") {
                let rel = path.strip_prefix(base).expect("inside").to_string_lossy().into_owned();
                out.push((rel, fs::read(&path).expect("bundle file")));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

enum Names {
    /// As the Editor on Linux/macOS: folder entries, then their files, every entry stored.
    Editor,
    /// As the Editor on Windows: backslashes, no folder entries.
    Windows,
}

fn zip_files(files: &[(String, Vec<u8>)], names: Names, method: CompressionMethod) -> Vec<u8> {
    let mut w = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(method).last_modified_time(DateTime::default());
    let mut dirs = std::collections::BTreeSet::new();
    for (name, data) in files {
        let name = match names {
            Names::Editor => {
                let parts: Vec<&str> = name.split('/').collect();
                for depth in 1..parts.len() {
                    let folder = format!("{}/", parts[..depth].join("/"));
                    if dirs.insert(folder.clone()) {
                        w.add_directory(folder, opts).expect("zip folder");
                    }
                }
                name.clone()
            }
            Names::Windows => name.replace('/', "\\"),
        };
        w.start_file(name, opts).expect("zip entry");
        w.write_all(data).expect("zip data");
    }
    w.finish().expect("zip").into_inner()
}

fn zip_entries(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let files: Vec<(String, Vec<u8>)> = entries.iter().map(|(n, d)| (n.to_string(), d.to_vec())).collect();
    zip_files(&files, Names::Windows, CompressionMethod::Deflated)
}

const EDITOR_SLAVE: &str = r#"{
  "network_configuration": {
    "host": "0.0.0.0",
    "port": 502
  },
  "buffer_mapping": {
    "holding_registers": {
      "qw_count": 1024,
      "mw_count": 1024,
      "md_count": 1024,
      "ml_count": 1024
    },
    "coils": {
      "qx_bits": 8192,
      "mx_bits": 0
    },
    "discrete_inputs": {
      "ix_bits": 8192
    },
    "input_registers": {
      "iw_count": 1024
    }
  }
}"#;

const EDITOR_MASTER: &str = r#"[
  {
    "name": "remote_io",
    "protocol": "MODBUS",
    "config": {
      "type": "SLAVE",
      "transport": "tcp",
      "host": "192.168.0.20",
      "port": 502,
      "timeout_ms": 1000,
      "slave_id": 1,
      "io_points": [
        { "fc": 1, "offset": "0x0000", "iec_location": "%IX100.0", "len": 8, "cycle_time_ms": 100 },
        { "fc": 3, "offset": "0x0010", "iec_location": "%IW100", "len": 4, "cycle_time_ms": 100 },
        { "fc": 15, "offset": "0x0020", "iec_location": "%QX100.0", "len": 16, "cycle_time_ms": 200 },
        { "fc": 16, "offset": "0x0030", "iec_location": "%QW100", "len": 2, "cycle_time_ms": 200 }
      ]
    }
  },
  {
    "name": "drive",
    "protocol": "MODBUS",
    "config": {
      "type": "SLAVE",
      "transport": "rtu",
      "serial_port": "/dev/ttyUSB0",
      "baud_rate": 19200,
      "parity": "E",
      "stop_bits": 1,
      "data_bits": 8,
      "timeout_ms": 500,
      "slave_id": 7,
      "io_points": [
        { "fc": 2, "offset": "0x0000", "iec_location": "%IX110.0", "len": 4, "cycle_time_ms": 50 },
        { "fc": 4, "offset": "0x0100", "iec_location": "%IW110", "len": 2, "cycle_time_ms": 50 },
        { "fc": 5, "offset": "0x0000", "iec_location": "%QX110.0", "len": 1, "cycle_time_ms": 50 },
        { "fc": 6, "offset": "0x0200", "iec_location": "%QW110", "len": 1, "cycle_time_ms": 50 }
      ]
    }
  }
]"#;

fn upload_zip(s: &mut Seeds, root: &Path) {
    let demo = files_of(&root.join("scripts/demo-bundle"));
    s.put("upload_zip", "demo-editor.zip", &zip_files(&demo, Names::Editor, CompressionMethod::Stored));
    s.put("upload_zip", "demo-windows.zip", &zip_files(&demo, Names::Windows, CompressionMethod::Stored));
    let strucpp = files_of(&root.join("companion/builder/tests/fixtures/strucpp-demo"));
    s.put("upload_zip", "strucpp.zip", &zip_files(&strucpp, Names::Editor, CompressionMethod::Deflated));
    let small: &[(&str, &[u8])] = &[
        ("Config0.c", b"int config0;"),
        ("Res0.c", b"int res0;"),
        ("debug.c", b"char plc_program_md5[] = \"0123456789abcdef0123456789abcdef\";\n#define VAR_COUNT 1\n"),
        ("glueVars.c", b"int glue;"),
        ("program.st", b"PROGRAM main\nEND_PROGRAM\n(*DBG:char md5[] = \"0123456789ABCDEF0123456789ABCDEF\";*)\n"),
        ("conf/modbus_slave.json", EDITOR_SLAVE.as_bytes()),
        ("conf/modbus_master.json", EDITOR_MASTER.as_bytes()),
        ("conf/other.json", b"{}"),
    ];
    s.put("upload_zip", "matiec-small.zip", &zip_entries(small));
    s.put("upload_zip", "common-root.zip", &zip_entries(&[("proj/Config0.c", b"x"), ("proj/lib/a.h", b"y")]));
    s.put("upload_zip", "macos-junk.zip", &zip_entries(&[("Config0.c", b"x"), ("__MACOSX/._Config0.c", b"junk")]));
    s.put("upload_zip", "parent.zip", &zip_entries(&[("ok.c", b"x"), ("lib/../../evil.c", b"x")]));
    s.put("upload_zip", "refused-ext.zip", &zip_entries(&[("run.sh", b"#!/bin/sh")]));
    s.put("upload_zip", "bad-conf-name.zip", &zip_entries(&[("conf/.hidden.json", b"{}"), ("Config0.c", b"x")]));
    let mut w = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.add_symlink("lib", "/etc", SimpleFileOptions::default()).expect("symlink");
    s.put("upload_zip", "symlink.zip", &w.finish().expect("zip").into_inner());
    let zeros = vec![0u8; 1 << 20];
    s.put(
        "upload_zip",
        "ratio.zip",
        &zip_files(&[("big.c".into(), zeros)], Names::Windows, CompressionMethod::Deflated),
    );
}

// ---- bundle_files ----

fn bundle_files(s: &mut Seeds, root: &Path) {
    let demo = root.join("scripts/demo-bundle");
    let fixture = root.join("companion/builder/tests/fixtures/strucpp-demo");
    for (name, path) in [
        ("VARIABLES.csv", demo.join("VARIABLES.csv")),
        ("program.st", demo.join("program.st")),
        ("debug-map.json", fixture.join("debug-map.json")),
        ("defines.h", fixture.join("defines.h")),
    ] {
        s.put("bundle_files", name, &fs::read(path).expect("bundle file"));
    }
    s.put(
        "bundle_files",
        "retain.csv",
        b"// Programs\n0;CONFIG0.RES0.I;MAIN;\n\n// Variables\n0;FB;CONFIG0.RES0.I;CONFIG0.RES0.I;MAIN;;0;\n\
          1;VAR;CONFIG0.RES0.I.A;CONFIG0.RES0.I.A;INT;INT;1;\n2;VAR;CONFIG0.RES0.I.B;CONFIG0.RES0.I.B;BOOL;BOOL;0;\n\
          3;VAR;CONFIG0.RES0.I.C;CONFIG0.RES0.I.C;TIME;TIME;\n\n// Ticktime\n10000000\n",
    );
    s.put(
        "bundle_files",
        "map-groups.json",
        br#"{"version":2,"md5":"0123456789abcdef0123456789abcdef","arrays":[{"index":0,"count":2},{"index":2,"count":3}],
"leaves":[{"arrayIdx":0,"elemIdx":0,"path":"I.A","type":"INT","size":2},{"arrayIdx":0,"elemIdx":1,"path":"I.B","type":"BOOL","size":1},
{"arrayIdx":2,"elemIdx":0,"path":"I.C","type":"TIME","size":8},{"arrayIdx":2,"elemIdx":1,"path":"I.D","type":"STRING","size":82},
{"arrayIdx":2,"elemIdx":2,"path":"I.E","type":"LREAL","size":8}]}"#,
    );
}

// ---- debug_pdu ----

fn debug_pdu(s: &mut Seeds) {
    // As the Editor sends them: hex text.
    for (name, text) in [
        ("md5-probe", "45 DE AD 00 00"),
        ("info", "41"),
        ("list-flat", "44 00 03 00 00 00 01 00 1A"),
        ("list-pairs", "44 00 02 00 00 00 00 00 05"),
        ("range-flat", "43 00 00 00 0A"),
        ("range-pairs", "43 00 00 00 00 1A"),
        ("force-flat", "42 00 01 01 00 02 00 2A"),
        ("force-pairs", "42 00 00 03 01 00 02 00 2A"),
        ("release", "42 00 01 00 00 00"),
        ("compact", "45dead0000"),
    ] {
        s.put("debug_pdu", name, text.as_bytes());
    }
    // Raw PDUs: a full 0x44 of 256 indices, an oversized force, an unknown code.
    let mut list = vec![0x44, 0x01, 0x00];
    for i in 0..256u16 {
        list.extend_from_slice(&i.to_be_bytes());
    }
    s.put("debug_pdu", "list-256.bin", &list);
    let mut force = vec![0x42, 0x00, 0x02, 0x01, 0x01, 0x01];
    force.extend(std::iter::repeat_n(0x55, 257));
    s.put("debug_pdu", "force-too-long.bin", &force);
    s.put("debug_pdu", "unknown.bin", &[0x50, 0x00]);
}

// ---- debug_values ----

/// The index of `name` in the entry's type list.
fn type_byte(name: &str) -> u8 {
    const TYPES: &[&str] = &[
        "BOOL",
        "SINT",
        "INT",
        "DINT",
        "LINT",
        "USINT",
        "BYTE",
        "UINT",
        "WORD",
        "UDINT",
        "DWORD",
        "ULINT",
        "LWORD",
        "REAL",
        "LREAL",
        "TIME",
        "DATE",
        "TOD",
        "TIME_OF_DAY",
        "DT",
        "DATE_AND_TIME",
        "STRING",
        "WSTRING",
        "MY_STRUCT",
    ];
    TYPES.iter().position(|t| *t == name).expect("known type") as u8
}

fn debug_values(s: &mut Seeds) {
    let timespec = |sec: i64, nsec: i64| [sec.to_ne_bytes(), nsec.to_ne_bytes()].concat();
    let values: Vec<(&str, Vec<u8>)> = vec![
        ("BOOL", vec![1]),
        ("INT", (-5i16).to_le_bytes().to_vec()),
        ("DINT", 123_456i32.to_le_bytes().to_vec()),
        ("ULINT", u64::MAX.to_le_bytes().to_vec()),
        ("REAL", 1.5f32.to_le_bytes().to_vec()),
        ("LREAL", (-2.25f64).to_le_bytes().to_vec()),
        ("TIME", timespec(1, 500_000_000)),
        ("TIME", 1_500_000_000i64.to_le_bytes().to_vec()),
        ("DT", timespec(1_795_000_000, 0)),
        ("DATE", timespec(-86_400, 0)),
        ("TOD", timespec(3_723, 4_000_000)),
        ("STRING", [&[5u8][..], b"hello", &[0; 10]].concat()),
        ("WSTRING", [&[2u8][..], &[0x48, 0, 0x69, 0]].concat()),
        ("MY_STRUCT", vec![1, 2, 3, 4]),
    ];
    for (i, (ty, raw)) in values.iter().enumerate() {
        s.put("debug_values", &format!("{i:02}-{}", ty.to_ascii_lowercase()), &[&[type_byte(ty)][..], raw].concat());
    }
    s.put("debug_values", "named-type", b"\xF0UDINT\x01\x02\x03\x04");
}

// ---- modbus_conf ----

fn modbus_conf(s: &mut Seeds, root: &Path) {
    s.put("modbus_conf", "editor-slave.json", EDITOR_SLAVE.as_bytes());
    s.put("modbus_conf", "editor-master.json", EDITOR_MASTER.as_bytes());
    s.put(
        "modbus_conf",
        "demo-slave.json",
        &fs::read(root.join("scripts/demo-bundle/conf/modbus_slave.json")).expect("demo conf"),
    );
    s.put(
        "modbus_conf",
        "legacy-slave.json",
        br#"{"network_configuration":{"port":502},"buffer_mapping":{"max_coils":8000,"max_discrete_inputs":8000,"max_holding_registers":1000,"max_input_registers":1000}}"#,
    );
    s.put(
        "modbus_conf",
        "our-additions.json",
        br#"{"network_configuration":{"host":"127.0.0.1","port":1502,"max_connections":4,"idle_timeout_ms":5000,"frame_timeout_ms":500,"write_timeout_ms":100,"unit_id":3},"word_order":"low_word_first","buffer_mapping":{"holding_registers":{"qw_count":4,"mw_count":2,"md_count":3,"ml_count":2},"coils":{"qx_bits":9,"mx_bits":7},"discrete_inputs":{"ix_bits":1},"input_registers":{"iw_count":2}}}"#,
    );
    s.put(
        "modbus_conf",
        "oversized.json",
        br#"{"buffer_mapping":{"holding_registers":{"qw_count":5000},"coils":{"qx_bits":99999}}}"#,
    );
    s.put(
        "modbus_conf",
        "shared-serial.json",
        br#"[{"name":"a","config":{"transport":"rtu","serial_port":"/dev/ttyS0","baud_rate":9600,"cycle_time_ms":20,"io_points":[{"fc":3,"offset":0,"iec_location":"%IW0","len":1}]}},{"name":"b","config":{"transport":"rtu","serial_port":"/dev/ttyS0","baud_rate":19200,"io_points":[{"fc":16,"offset":"65534","iec_location":"%QD0","len":1}]}}]"#,
    );
}

// ---- modbus_tcp ----

fn mbap(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = tid.to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    f.push(unit);
    f.extend_from_slice(pdu);
    f
}

fn modbus_tcp(s: &mut Seeds) {
    let requests: &[(&str, &[u8])] = &[
        ("fc01", &[1, 0, 0, 0, 16]),
        ("fc02", &[2, 0, 3, 0, 5]),
        ("fc03", &[3, 0, 0, 0, 10]),
        ("fc04", &[4, 0, 0, 0, 2]),
        ("fc05", &[5, 0, 1, 0xFF, 0]),
        ("fc06", &[6, 0, 1, 0x12, 0x34]),
        ("fc15", &[15, 0, 0, 0, 10, 2, 0xFF, 0x03]),
        ("fc16", &[16, 0, 150, 0, 4, 8, 0, 1, 0, 2, 0, 3, 0, 4]),
        ("fc23", &[23, 0, 0, 0, 2, 0, 1, 0, 1, 2, 0xAB, 0xCD]),
        ("bad-count", &[16, 0, 0, 0, 2, 3, 0, 1, 0]),
        ("unknown-fc", &[0x2B, 0x0E, 1, 0]),
        ("past-end", &[3, 0xFF, 0xF0, 0, 125]),
    ];
    for (pick, unit) in [(0u8, 1u8), (3, 1)] {
        for (name, pdu) in requests {
            s.put("modbus_tcp", &format!("cfg{pick}-{name}"), &[&[pick][..], &mbap(7, unit, pdu)].concat());
        }
    }
    // Pipelined requests, one for another unit, then a half frame.
    let mut stream = vec![3u8];
    stream.extend(mbap(1, 1, &[3, 0, 0, 0, 4]));
    stream.extend(mbap(2, 9, &[3, 0, 0, 0, 4]));
    stream.extend(mbap(3, 1, &[16, 0, 3, 0, 6, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
    stream.extend(&mbap(4, 1, &[1, 0, 0, 0, 8])[..9]);
    s.put("modbus_tcp", "pipelined", &stream);
    // An impossible header closes the connection; what follows is never answered.
    let mut closed = vec![0u8];
    closed.extend([0, 1, 0, 5, 0, 6, 1, 3, 0, 0, 0, 1]);
    closed.extend(mbap(2, 1, &[3, 0, 0, 0, 1]));
    s.put("modbus_tcp", "bad-protocol", &closed);
}

// ---- s7_request ----

/// S7 frames as snap7 clients send them (see `openplc_fuzz_entries::s7_request` for the
/// input's mode byte).
mod s7 {
    pub const DB: u8 = 0x84;
    pub const PE: u8 = 0x81;
    pub const PA: u8 = 0x82;
    pub const MK: u8 = 0x83;
    pub const CT: u8 = 0x1C;
    pub const TM: u8 = 0x1D;

    pub fn tpkt(tpdu: &[u8]) -> Vec<u8> {
        let mut f = vec![3, 0];
        f.extend_from_slice(&(4 + tpdu.len() as u16).to_be_bytes());
        f.extend_from_slice(tpdu);
        f
    }

    pub fn dt(pdu: &[u8], last: bool) -> Vec<u8> {
        tpkt(&[&[2, 0xF0, if last { 0x80 } else { 0 }][..], pdu].concat())
    }

    /// A connection request naming `called` (connection type, rack, slot) and TPDU size code.
    pub fn cr(called: u16, size: u8) -> Vec<u8> {
        let mut body = vec![0xE0, 0, 0, 0, 1, 0, 0xC0, 1, size, 0xC1, 2, 1, 0, 0xC2, 2];
        body.extend_from_slice(&called.to_be_bytes());
        tpkt(&[&[body.len() as u8][..], &body].concat())
    }

    fn header(rosctr: u8, params: &[u8], data: &[u8]) -> Vec<u8> {
        let mut p = vec![0x32, rosctr, 0, 0, 0, 1];
        p.extend_from_slice(&(params.len() as u16).to_be_bytes());
        p.extend_from_slice(&(data.len() as u16).to_be_bytes());
        [p, params.to_vec(), data.to_vec()].concat()
    }

    pub fn job(params: &[u8], data: &[u8]) -> Vec<u8> {
        header(1, params, data)
    }

    pub fn setup(pdu: u16) -> Vec<u8> {
        job(&[&[0xF0, 0, 0, 1, 0, 1][..], &pdu.to_be_bytes()].concat(), &[])
    }

    pub fn item(ts: u8, count: u16, db: u16, area: u8, bit_address: u32) -> Vec<u8> {
        let mut i = vec![0x12, 0x0A, 0x10, ts];
        i.extend_from_slice(&count.to_be_bytes());
        i.extend_from_slice(&db.to_be_bytes());
        i.push(area);
        i.extend_from_slice(&bit_address.to_be_bytes()[1..]);
        i
    }

    pub fn read(items: &[Vec<u8>]) -> Vec<u8> {
        job(&[&[4, items.len() as u8][..], &items.concat()].concat(), &[])
    }

    /// `(address item, data transport size, length field, bytes)` per item.
    pub fn write(items: &[(Vec<u8>, u8, u16, Vec<u8>)]) -> Vec<u8> {
        let mut params = vec![5, items.len() as u8];
        let mut data = Vec::new();
        for (n, (i, ts, len, bytes)) in items.iter().enumerate() {
            params.extend_from_slice(i);
            data.extend_from_slice(&[0, *ts]);
            data.extend_from_slice(&len.to_be_bytes());
            data.extend_from_slice(bytes);
            if bytes.len() % 2 == 1 && n + 1 < items.len() {
                data.push(0);
            }
        }
        job(&params, &data)
    }

    pub fn userdata(group: u8, sub: u8, payload: &[u8], seq: u8, continuation: bool) -> Vec<u8> {
        if continuation {
            header(7, &[0, 1, 0x12, 8, 0x12, 0x40 | group, sub, seq, 0, 0, 0, 0], &[0x0A, 0, 0, 0])
        } else {
            let mut data = vec![0xFF, 0x09];
            data.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            data.extend_from_slice(payload);
            header(7, &[0, 1, 0x12, 4, 0x11, 0x40 | group, sub, seq], &data)
        }
    }

    pub fn szl(id: u16, index: u16) -> Vec<u8> {
        userdata(4, 1, &[id.to_be_bytes(), index.to_be_bytes()].concat(), 0, false)
    }
}

fn s7_request(s: &mut Seeds) {
    use s7::*;
    let one = |pdu: Vec<u8>| dt(&pdu, true);
    let pi = |params: &[u8], name: &[u8]| one(job(&[params, name].concat(), &[]));
    let big: Vec<u8> = (0..900u32).map(|i| (i * 7 + 1) as u8).collect();
    // Mode 1: after the canned handshake (connected, PDU 240).
    let connected: Vec<(&str, Vec<u8>)> = vec![
        ("setup_960", one(setup(960))),
        ("read_db_bytes", one(read(&[item(2, 4, 1, DB, 0)]))),
        ("read_count_ffff", one(read(&[item(2, 0xFFFF, 7, DB, 0)]))),
        ("read_count_ffff_word", one(read(&[item(4, 0xFFFF, 2, DB, 0)]))),
        ("read_count_zero", one(read(&[item(2, 0, 1, DB, 0)]))),
        ("read_bit", one(read(&[item(1, 1, 1, DB, 3 * 8 + 5)]))),
        (
            "read_multi",
            one(read(&[
                item(2, 3, 1, DB, 0),
                item(5, 2, 2, DB, 16),
                item(8, 1, 3, DB, 32),
                item(6, 1, 4, DB, 0),
                item(1, 1, 0, PE, 9),
                item(2, 1, 0, PA, 0),
                item(4, 2, 0, MK, 8),
                item(3, 5, 6, DB, 8),
            ])),
        ),
        ("read_unknown_db", one(read(&[item(2, 1, 99, DB, 0)]))),
        ("read_past_end", one(read(&[item(2, 8, 5, DB, 30 * 8)]))),
        (
            "read_counters_timers",
            one(read(&[item(0x1C, 1, 0, CT, 0), item(0x1D, 1, 0, TM, 0), item(0x1D, 1, 2, DB, 0)])),
        ),
        ("read_misaligned", one(read(&[item(4, 1, 2, DB, 3)]))),
        ("read_bad_ts", one(read(&[item(0x0B, 1, 2, DB, 0)]))),
        ("read_symbolic", one(job(&[4, 1, 0x12, 0x06, 0xB2, 1, 2, 3, 4, 5], &[]))),
        ("read_20_items", one(read(&(0..20).map(|i| item(2, 1, 1, DB, i * 8)).collect::<Vec<_>>()))),
        ("write_bytes", one(write(&[(item(2, 2, 1, DB, 0), 4, 16, vec![0x81, 0x01])]))),
        (
            "write_int_partial",
            one(write(&[(item(2, 1, 2, DB, 8), 4, 8, vec![0x7F]), (item(2, 3, 3, DB, 8), 4, 24, vec![1, 2, 3])])),
        ),
        ("write_bit", one(write(&[(item(1, 1, 1, DB, 10), 3, 1, vec![1]), (item(1, 1, 0, MK, 3), 3, 1, vec![1])]))),
        (
            "write_input",
            one(write(&[(item(2, 2, 5, DB, 0), 4, 16, vec![0, 1]), (item(1, 1, 0, PE, 0), 3, 1, vec![1])])),
        ),
        ("write_size_mismatch", one(write(&[(item(4, 2, 2, DB, 0), 4, 16, vec![0, 1])]))),
        (
            "write_real_lint",
            one(write(&[
                (item(8, 1, 4, DB, 0), 7, 4, vec![0x3F, 0x80, 0, 0]),
                (item(2, 8, 4, DB, 8), 4, 64, vec![0; 8]),
            ])),
        ),
        ("write_count_ffff", one(write(&[(item(2, 0xFFFF, 7, DB, 0), 4, 16, vec![0, 1])]))),
        // 900 bytes onto a bool mapping at PDU 960: 7 200 image writes, two batches.
        (
            "write_bool_900",
            [one(setup(960)), one(write(&[(item(2, 900, 7, DB, 0), 4, 900 * 8, big.clone())]))].concat(),
        ),
        ("szl_0011", one(szl(0x0011, 0))),
        ("szl_001c_fragmented", [one(szl(0x001C, 0)), one(userdata(4, 1, &[], 1, true))].concat()),
        ("szl_011c", one(szl(0x011C, 7))),
        ("szl_0f1c", one(szl(0x0F1C, 0))),
        ("szl_0424", one(szl(0x0424, 0))),
        ("szl_0131", one(szl(0x0131, 1))),
        ("szl_0000", one(szl(0x0000, 0))),
        ("szl_unknown", one(szl(0x0232, 4))),
        ("szl_bad_continuation", one(userdata(4, 1, &[], 9, true))),
        ("userdata_clock", one(userdata(7, 1, &[], 0, false))),
        ("plc_stop", pi(&[0x29, 0, 0, 0, 0, 0, 9], b"P_PROGRAM")),
        ("plc_hot_start", pi(&[0x28, 0, 0, 0, 0, 0, 0, 0xFD, 0, 0, 9], b"P_PROGRAM")),
        ("unknown_function", one(job(&[0x1D, 0], &[]))),
        ("fragmented_read", {
            let pdu = read(&[item(2, 4, 1, DB, 0)]);
            [dt(&pdu[..7], false), dt(&pdu[7..], true)].concat()
        }),
        ("empty_dt", dt(&[], true)),
        ("ack_from_client", one(vec![0x32, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])),
        ("not_s7", one(vec![0x72, 1, 0, 0])),
        ("disconnect", tpkt(&[6, 0x80, 0, 1, 0, 1, 0])),
        ("second_cr", cr(0x0102, 0x0A)),
    ];
    // Mode 0: the client's own connection request first.
    let mut long_tsap = vec![6 + 4 + 242 + 3, 0xE0, 0, 0, 0, 1, 0, 0xC1, 240];
    long_tsap.extend_from_slice(&[0; 240]);
    long_tsap.extend_from_slice(&[0xC2, 2, 1, 2, 0xC0, 1, 0x0A]);
    let unconnected: Vec<(&str, Vec<u8>)> = vec![
        ("connect_and_setup", [cr(0x0102, 0x0A), one(setup(240)), one(read(&[item(2, 4, 1, DB, 0)]))].concat()),
        ("connect_slot1_pdu960", [cr(0x0101, 0x0D), one(setup(960)), one(szl(0x001C, 0))].concat()),
        ("connect_small_tpdu", [cr(0x0102, 0x07), one(setup(480)), one(read(&[item(2, 64, 7, DB, 0)]))].concat()),
        ("connect_wrong_slot", cr(0x0105, 0x0A)),
        ("connect_wrong_type", cr(0x1002, 0x0A)),
        ("connect_no_params", tpkt(&[6, 0xE0, 0, 0, 0, 1, 0])),
        ("connect_long_calling_tsap", tpkt(&long_tsap)),
        ("data_before_connect", one(setup(240))),
        ("huge_tpkt", [&[3u8, 0, 0xFF, 0xFF][..], &[0; 16]].concat()),
    ];
    for (name, body) in &connected {
        s.put("s7_request", name, &[&[1u8][..], body].concat());
    }
    for (name, body) in &unconnected {
        s.put("s7_request", name, &[&[0u8][..], body].concat());
    }
    // Writes failing (mode bit 1) and the PLC stopped (mode bit 2).
    for (name, body) in
        connected.iter().filter(|(n, _)| matches!(*n, "write_bytes" | "write_int_partial" | "write_bool_900"))
    {
        s.put("s7_request", &format!("{name}.failing"), &[&[3u8][..], body].concat());
    }
    for (name, body) in connected.iter().filter(|(n, _)| *n == "szl_0424") {
        s.put("s7_request", &format!("{name}.stopped"), &[&[5u8][..], body].concat());
    }
}

// ---- plugins_conf ----

fn plugins_conf(s: &mut Seeds) {
    s.put(
        "plugins_conf",
        "readme",
        b"native_counter,/opt/plugins/libnative_counter.so,0,1\npython_echo,/opt/plugins/python_echo/python_echo.py,0,0,,venvs/python_echo\n",
    );
    s.put(
        "plugins_conf",
        "comments",
        b"# plugins\n\n  # indented comment\na,./a.so,1,1\nb, ./b.py ,0,0,conf/b.json\nc,/x/c.py,1,0,,/venvs/c\n",
    );
    let many: String = (0..16).map(|i| format!("p{i},./p{i}.so,{},1\n", i % 2)).collect();
    s.put("plugins_conf", "sixteen", many.as_bytes());
    s.put("plugins_conf", "bad-field", b"a,./a.so,yes,1\n");
}

// ---- image_conf ----

fn image_conf(s: &mut Seeds) {
    s.put(
        "image_conf",
        "editor",
        b"# I/O image sizes for this program.\nformat_version=2\nbool_input=16 bits\nbool_output=64 bits\n\
byte_input=0 bytes\nbyte_output=0 bytes\nint_input=32 words\nint_output=4096 words\ndint_input=0 dwords\n\
dint_output=0 dwords\nlint_input=0 lwords\nlint_output=0 lwords\nint_memory=20 words\ndint_memory=0 dwords\n\
lint_memory=0 lwords\nbool_memory=9 bits\n",
    );
    s.put("image_conf", "max", b"format_version=2\nint_output=65536 words\nbool_memory=524288 bits\n");
    s.put("image_conf", "over", b"format_version=2\nint_output=65537 words\n");
    s.put("image_conf", "no-version", b"int_output=4 words\n");
    s.put("image_conf", "old-form", b"bool_output=8\nint_memory=20\n");
    s.put("image_conf", "wrong-unit", b"format_version=2\nbool_output=8 bytes\n");
    s.put("image_conf", "twice", b"format_version=2\nint_output=1 words\nint_output=2 words\n");
    s.put("image_conf", "crlf-unknown", b"format_version = 2\r\nfuture=1 zorks\r\nint_memory = 7 words\r\n");
}

// ---- settings_json ----

fn settings_json(s: &mut Seeds) {
    s.put("settings_json", "empty", b"{}");
    s.put(
        "settings_json",
        "full",
        br#"{"port":8443,"bind":"127.0.0.1","cert":"tls/my.pem","key":"/etc/openplc/key.pem","rt_binary":"/usr/bin/openplc-rt","rt_cpu":"1","rt_priority":49,"rt_watchdog_ms":500,"shm":"openplc-test","editor_compat":"dual","first_user_from":"loopback","discovery_port":0,"cc":"gcc","cxx":"g++","build_jobs":2,"build_timeout_s":600,"retain_flush_s":5}"#,
    );
    s.put("settings_json", "cert-only", br#"{"cert":"a.pem"}"#);
    s.put("settings_json", "unknown-key", br#"{"prot":8443}"#);
    s.put("settings_json", "retain-too-long", br#"{"retain_flush_s":3601}"#);
    s.put("settings_json", "ipv6", br#"{"bind":"::1","editor_compat":"legacy","first_user_from":"none"}"#);
}

// ---- rest_bodies ----

fn rest_bodies(s: &mut Seeds) {
    for (name, body) in [
        ("login", r#"{"username":"admin","password":"secret-pass"}"#),
        ("create-user", r#"{"username":"operator","password":"another-pass","role":"user"}"#),
        ("create-first", r#"{"username":"me","password":"secret-pass"}"#),
        (
            "update-user",
            r#"{"username":"renamed","password":"new-pass","current_password":"old-pass","role":"viewer"}"#,
        ),
        ("password-change", r#"{"old_password":"secret-pass","new_password":"better-pass"}"#),
        ("plugin-command", r#"{"plugin":"ethercat","command":"scan","params":{"interface":"eth0","timeout_ms":500}}"#),
        ("plugin-no-params", r#"{"plugin":"native_counter","command":"reset"}"#),
        ("unicode-name", r#"{"username":"  Zoë \u202e","password":"x"}"#),
        ("not-an-object", r#"["admin","secret-pass"]"#),
        ("empty", ""),
    ] {
        s.put("rest_bodies", name, body.as_bytes());
    }
}

// ---- shm_messages ----

fn shm_messages(s: &mut Seeds) {
    let enc = |m: &dyn erased::Encode| m.encode();
    let addr = |t: &str| IecAddress::parse(t).expect("address");
    let commands = [
        CommandEnvelope { seq: 1, command: Command::Start },
        CommandEnvelope {
            seq: 2,
            command: Command::Load {
                path: bounded("/var/lib/openplc/programs/7/program.so"),
                start: true,
                warm: false,
                online: false,
                image: shared_abi::sizes::ImageRequest::FROM_PROGRAM,
            },
        },
        CommandEnvelope {
            seq: 3,
            command: Command::Force {
                var: 4,
                value: heapless::Vec::from_slice(&[0, 42]).expect("fits"),
                big_endian: true,
            },
        },
        CommandEnvelope { seq: u32::MAX, command: Command::UnforceAll },
    ];
    let writes =
        [ImageWrite { addr: addr("%QW0"), value: 42 }, ImageWrite { addr: addr("%MD1023"), value: u32::MAX as u64 }];
    let events = [
        Event::StateChanged { state: shared_abi::layout::PlcState::Running, cycle: 100 },
        Event::ProgramFault { cause: shared_abi::msg::FaultCause::Signal(11), cycle: 12_345, restart: false },
        Event::Overruns { new: 1, total: 3, worst_latency_ns: 2_500_000 },
        Event::BadMessage { ring: shared_abi::msg::RingId::Writes },
    ];
    let logs = [LogLine::new(LogLevel::Warning, "scan overran its period by 1.2 ms"), LogLine::new(LogLevel::Info, "")];
    let mut all: Vec<(String, Vec<u8>)> = Vec::new();
    all.extend(commands.iter().enumerate().map(|(i, m)| (format!("command-{i}"), enc(m))));
    all.extend(writes.iter().enumerate().map(|(i, m)| (format!("write-{i}"), enc(m))));
    all.extend(events.iter().enumerate().map(|(i, m)| (format!("event-{i}"), enc(m))));
    all.extend(logs.iter().enumerate().map(|(i, m)| (format!("log-{i}"), enc(m))));
    for (name, bytes) in &all {
        s.put("shm_messages", name, bytes);
    }
    // Ring programs: pick the ring, push raw bytes, push a typed message, pop raw, pop typed.
    let program = |pick: u8, msg: &[u8]| -> Vec<u8> {
        let mut p = vec![pick, 0, 0, msg.len() as u8];
        p.extend_from_slice(msg);
        p.push(1);
        p.extend_from_slice(msg);
        p.extend([2, 3, 3]);
        p
    };
    s.put("shm_messages", "ring-command", &program(0, &enc(&commands[2])));
    s.put("shm_messages", "ring-write", &program(1, &enc(&writes[0])));
    s.put("shm_messages", "ring-event", &program(2, &enc(&events[1])));
    s.put("shm_messages", "ring-log", &program(3, &enc(&logs[0])));
    // Fill a ring past full.
    let mut full = vec![1u8];
    for _ in 0..10 {
        full.extend([0, 0, 2, 0xAA, 0xBB]);
    }
    full.extend([2, 2]);
    s.put("shm_messages", "ring-full", &full);
}

mod erased {
    /// postcard encoding behind one object type, for the seed lists.
    pub trait Encode {
        fn encode(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Encode for T {
        fn encode(&self) -> Vec<u8> {
            postcard::to_allocvec(self).expect("encode")
        }
    }
}

// ---- monitor_input ----

fn monitor_input(s: &mut Seeds) {
    for (name, text) in [
        ("auth", r#"{"t":"auth","token":"eyJhbGciOiJIUzI1NiJ9.e30.sig"}"#),
        ("watch", r#"{"t":"watch","vars":[0,5,31,32],"histogram":true,"logs_from":12}"#),
        ("watch-empty", r#"{"t":"watch"}"#),
        ("watch-unknown-field", r#"{"t":"watch","vars":[1],"force":true}"#),
        ("force-body", r#"{"index":0,"value":"4242"}"#),
        ("release-body", r#"{"index":3}"#),
    ] {
        s.put("monitor_input", name, text.as_bytes());
    }
    // Typed values: [type, kind, size] (indices into the entry's tables), then the text.
    for (name, head, text) in [
        ("value-uint", [6u8, 0, 2], "16#FFFF"),
        ("value-bool", [0, 0, 1], "TRUE"),
        ("value-lint", [4, 0, 8], "-9223372036854775808"),
        ("value-real", [13, 0, 4], "-2.5e3"),
        ("value-time-matiec", [15, 1, 16], "T#1d2h3m4s5ms6us7ns"),
        ("value-time-strucpp", [15, 0, 8], "T#-1.5s"),
        ("value-string", [16, 2, 127], "'OpenPLC'"),
        ("value-wstring", [17, 2, 9], "hé"),
    ] {
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(text.as_bytes());
        s.put("monitor_input", name, &bytes);
    }
}
