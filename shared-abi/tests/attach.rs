//! Opening the shared-memory file: one rt-core, one client, clear refusals otherwise.

use shared_abi::layout::{ABI_VERSION, AttachError, LAYOUT_SIZE, PlcState};
use shared_abi::shm::{ClientMapping, ObserverMapping, RtMapping, ShmError, rt_alive};
use std::sync::atomic::Ordering;

fn name(dir: &tempfile::TempDir) -> String {
    dir.path().join("shm").to_str().unwrap().to_string()
}

#[test]
fn only_one_rt_core_and_one_client_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let n = name(&dir);
    let rt = RtMapping::open(&n).unwrap();
    assert!(rt.created());
    match RtMapping::open(&n) {
        Err(ShmError::RtRunning { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("second rt-core must be refused, got {:?}", other.err()),
    }
    let client = ClientMapping::open(&n).unwrap();
    assert!(matches!(ClientMapping::open(&n), Err(ShmError::ClientAttached { .. })));
    let observer = ObserverMapping::open(&n).unwrap();
    assert_eq!(observer.shm().state(), PlcState::Empty);
    assert!(client.rt_alive());
    drop(client);
    ClientMapping::open(&n).expect("the lease is free once the client is gone");
    drop(rt);
    assert!(!rt_alive(std::path::Path::new(&n)));
}

#[test]
fn a_restarted_rt_core_takes_over_the_same_file_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let n = name(&dir);
    let rt = RtMapping::open(&n).unwrap();
    let client = ClientMapping::open(&n).unwrap();
    rt.shm().header.heartbeat.store(41, Ordering::Release);
    drop(rt);
    let rt2 = RtMapping::open(&n).unwrap();
    assert!(!rt2.created(), "took over instead of recreating");
    rt2.shm().header.heartbeat.store(42, Ordering::Release);
    assert_eq!(
        client.shm().header.heartbeat.load(Ordering::Acquire),
        42,
        "the client's mapping still sees the live file"
    );
}

#[test]
fn another_abi_version_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let n = name(&dir);
    let rt = RtMapping::open(&n).unwrap();
    drop(rt);
    // Pretend an older build made the file: patch the version field (offset 8).
    let mut bytes = std::fs::read(&n).unwrap();
    bytes[8..12].copy_from_slice(&(ABI_VERSION + 1).to_le_bytes());
    std::fs::write(&n, &bytes).unwrap();
    let err = ClientMapping::open(&n).err().expect("client must refuse");
    assert!(matches!(err, ShmError::Attach(_, AttachError::WrongVersion { .. })));
    let text = err.to_string();
    assert!(
        text.contains(&format!("ABI version {}", ABI_VERSION + 1)) && text.contains(&format!("version {ABI_VERSION}")),
        "{text}"
    );
}

#[test]
fn rt_core_leaves_an_incompatible_file_alone_while_a_client_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let n = name(&dir);
    drop(RtMapping::open(&n).unwrap());
    let client = ClientMapping::open(&n).unwrap();
    let mut bytes = std::fs::read(&n).unwrap();
    bytes[8..12].copy_from_slice(&(ABI_VERSION + 1).to_le_bytes());
    std::fs::write(&n, &bytes).unwrap();
    assert!(matches!(RtMapping::open(&n), Err(ShmError::IncompatibleInUse(..))));
    drop(client);
    let rt = RtMapping::open(&n).expect("replaced once nobody uses it");
    assert!(rt.created());
    assert_eq!(std::fs::metadata(&n).unwrap().len(), LAYOUT_SIZE as u64);
}

#[test]
fn attaching_without_a_runtime_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = ClientMapping::open(&name(&dir)).err().unwrap();
    assert!(matches!(err, ShmError::NoRuntime(_)));
    assert!(err.to_string().contains("is openplc-rt running?"));
}
