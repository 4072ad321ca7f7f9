//! The runtime's own per-cycle work, timed without the sleep: `Engine::run_cycle` with a
//! program whose every image point is bound, fresh inputs every cycle (the worst case: the
//! whole input image is copied), a full output publication, an image write, forced
//! variables applied before and after the body, and a 60-variable watch list copied out
//! (the Editor's poll). Target: ≤ 2 µs per cycle.
//!
//! The same program with larger image tables (`image.conf` sizes of 4096, 16 384 and
//! 65 536 elements per table, the inputs changed across the whole table) shows how the cost
//! grows with the image: only the program's tables are copied, so at most linearly.
//!
//! Run with `cargo bench -p openplc-benches --bench cycle`.

use criterion::{Criterion, criterion_group, criterion_main};
use openplc_benches::{all_points_program, demo_program, strucpp_demo_program};
use rt_core::engine::{Engine, EngineConfig, EngineRings};
use rt_core::loader::{self, Log};
use rt_core::queue::loader_queues;
use rt_core::sys;
use shared_abi::client::RtClient;
use shared_abi::image::IecAddress;
use shared_abi::msg::Command;
use shared_abi::shm::RtMapping;
use shared_abi::sizes::{ImageRequest, ImageSizes, Table};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Rig {
    engine: Box<Engine>,
    client: RtClient,
    _dir: tempfile::TempDir,
}

/// Every table `n` elements long, as an upload's `image.conf` can ask.
fn sized(n: u32) -> ImageRequest {
    let mut configured = ImageSizes::ZERO;
    for t in Table::ALL {
        configured.set(t, n as usize);
    }
    ImageRequest { configured, square: false }
}

fn rig(program: &Path, dir: tempfile::TempDir, image: ImageRequest) -> Rig {
    let name = dir.path().join("shm").to_string_lossy().to_string();
    let mapping: &'static RtMapping = Box::leak(Box::new(RtMapping::open(&name).expect("shm")));
    let shm = mapping.shm();
    let (rings, logs) = EngineRings::split(mapping.take_ends().expect("ring ends"));
    let (link, ends) = loader_queues();
    let mut engine = Engine::new(shm, rings, link, EngineConfig { idle_period_ns: 1_000_000 });
    let log = Log::new(logs);
    std::thread::spawn(move || loader::run(shm, ends, log, Arc::new(AtomicBool::new(false))));
    let mut client = RtClient::open(&name).expect("client");
    let path = shared_abi::msg::bounded(program.to_str().expect("utf-8 path"));
    client.send(Command::Load { path, start: true, warm: false, online: false, image }).expect("load");
    let deadline = Instant::now() + Duration::from_secs(30);
    while shm.header.program_gen.load(Ordering::Acquire) == 0 {
        assert!(Instant::now() < deadline, "program never loaded");
        let now = sys::now_ns();
        engine.run_cycle(now, now);
        std::thread::sleep(Duration::from_millis(1));
    }
    Rig { engine, client, _dir: dir }
}

fn force(var: u32, bytes: &[u8]) -> Command {
    Command::Force { var, value: heapless::Vec::from_slice(bytes).expect("small"), big_endian: false }
}

fn bench_quiet(c: &mut Criterion, name: &str, mut rig: Rig) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let now = sys::now_ns();
                let t = Instant::now();
                rig.engine.run_cycle(now, now);
                total += t.elapsed();
            }
            total
        })
    });
}

fn bench(c: &mut Criterion, name: &str, mut rig: Rig, vars: u32, table: u32) {
    let watched: Vec<u32> = (0..60).map(|i| i % vars.max(1)).collect();
    rig.client.set_watch(&watched);
    for (i, var) in [0u32, 1, 2, 3].iter().enumerate() {
        rig.client.send(force(*var % vars.max(1), &[i as u8])).expect("force");
    }
    let point = IecAddress::parse("%MW1000").expect("address");
    let mut n = 0u64;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                rig.client.update_inputs(|img| {
                    img.int_input[(n % table as u64) as usize] = n as u16;
                    img.bool_input[(n % table as u64) as usize][0] ^= 1;
                });
                let _ = rig.client.write(point, n & 0xFFFF);
                let now = sys::now_ns();
                let t = Instant::now();
                rig.engine.run_cycle(now, now);
                total += t.elapsed();
            }
            total
        })
    });
    assert_eq!(rig.engine.state(), shared_abi::layout::PlcState::Running, "the program ran throughout");
}

fn cycle(c: &mut Criterion) {
    // The demo's 33 debug variables: the watch list takes 60 of them (with repeats), like
    // the Editor polling a POU.
    let vars = 33;
    let dir = tempfile::tempdir().expect("tempdir");
    let so = all_points_program(dir.path(), 1).expect("all-points program builds");
    // Its located variables size every table at 1024 (no image.conf).
    bench(c, "cycle/all-points-bound", rig(&so, dir, ImageRequest::FROM_PROGRAM), vars, 1024);

    let dir = tempfile::tempdir().expect("tempdir");
    bench_quiet(c, "cycle/all-points-bound-quiet", rig(&so, dir, ImageRequest::FROM_PROGRAM));

    // Larger images: the same program, every table configured longer.
    for n in [4096, 16_384, 65_536] {
        let dir = tempfile::tempdir().expect("tempdir");
        bench(c, &format!("cycle/all-points-bound-image-{n}"), rig(&so, dir, sized(n)), vars, n);
    }

    // The demo's located variables size its tables at one element or none: the bench's
    // write (%MW1000) needs them at 1024, as the image was before sizes were per program.
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = demo_program(dir.path(), 1).expect("demo builds");
    bench(c, "cycle/demo-program", rig(&demo, dir, sized(1024)), vars, 1024);

    // The same demo as an Editor >= 4.2 (STruC++) bundle: 27 debug leaves, located
    // variables copied around the scan by the adapter.
    let dir = tempfile::tempdir().expect("tempdir");
    let strucpp = strucpp_demo_program(dir.path()).expect("STruC++ demo builds");
    bench(c, "cycle/strucpp-demo-program", rig(&strucpp, dir, sized(1024)), 27, 1024);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = cycle
}
criterion_main!(benches);
