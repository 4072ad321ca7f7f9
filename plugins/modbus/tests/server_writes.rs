//! Writes are answered once the scan that applies them has started, and one scan takes the
//! writes of every connection (issue 12, item 2). rt-core is paused while eight pymodbus
//! clients, each on its own connection, write a `%MW` register: all eight writes wait in
//! rt-core's queue, the first scan after the pause applies them together, and each client
//! then reads back the value it wrote. The server counts the writes it answered and the
//! scans that applied them (the cycle the port's write ticket returns).

mod support;

use openplc_modbus::{Server, ServerConfig};
use shared_abi::client::Reader;
use std::time::Duration;
use support::*;
use tokio::process::Command;

const CLIENTS: u16 = 8;
/// `%MW10` is holding register 1024 + 10 in the default map; the test program leaves
/// `%MW10..` alone (it counts scans in `%MW0`).
const FIRST_REGISTER: u16 = 1024 + 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_many_connections_land_in_one_scan_and_read_back() {
    let (rt, plc) = start_rt(&["PERIOD_NS=2000000ULL"]);
    // The clients start while rt-core is stopped: their writes must outlast that.
    let cfg = ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        write_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let server = Server::start(cfg, plc.clone()).await.expect("server");
    let port = server.local_addr().port().to_string();

    rt.pause();
    let cycle_paused = plc.cycle();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut cmd = Command::new("python3");
            cmd.arg(py("write_read.py")).args([
                "127.0.0.1",
                &port,
                &(FIRST_REGISTER + i).to_string(),
                &(1000 + i).to_string(),
            ]);
            tokio::spawn(async move { run(&mut cmd, Duration::from_secs(90)).await })
        })
        .collect();
    until("every client's write to wait in rt-core's queue", Duration::from_secs(60), || {
        (rt.observer().shm().writes.len() == usize::from(CLIENTS)).then_some(())
    })
    .await;
    assert_eq!(server.status().writes_applied, 0, "no write is answered before a scan applied it");
    assert_eq!(plc.cycle(), cycle_paused, "rt-core stayed paused");
    rt.resume();

    for (i, client) in clients.into_iter().enumerate() {
        let out = client.await.expect("client task");
        let log = text(&out);
        assert!(out.status.success() && log.contains("PASS"), "client {i}:\n{log}");
        assert!(log.contains(&format!("read {}", 1000 + i)), "client {i} read back its value:\n{log}");
    }
    let st = server.status();
    assert_eq!(st.writes_applied, u64::from(CLIENTS), "{st:?}");
    assert_eq!(st.write_scans, 1, "one scan applied every connection's write: {st:?}");
    assert_eq!((st.exceptions, st.write_timeouts, st.write_busy), (0, 0, 0), "{st:?}");
    let snap = settled(&plc).await;
    let img = &snap.image;
    let expected: Vec<u16> = (0..CLIENTS).map(|i| 1000 + i).collect();
    assert_eq!(&img.int_memory[10..10 + usize::from(CLIENTS)], &expected[..], "%MW10..%MW17 in rt-core's image");
    server.stop().await;
}
