//! The engine driven cycle by cycle in-process.

mod support;

use shared_abi::image::IecAddress;
use shared_abi::sizes::{ImageRequest, ImageSizes, Table};
use support::InProcess;

/// Every table at 1024 elements, configured as an upload's `image.conf` would.
const LEGACY: ImageRequest = ImageRequest { configured: ImageSizes::LEGACY, square: false };

/// The input tables' prefixes the program's sizes cover, as bytes.
fn input_prefixes(i: &shared_abi::image::InputImage, sizes: &ImageSizes) -> Vec<u8> {
    use bytemuck::cast_slice as b;
    let mut out = Vec::new();
    out.extend_from_slice(b(&i.bool_input[..sizes.get(Table::BoolInput)]));
    out.extend_from_slice(&i.byte_input[..sizes.get(Table::ByteInput)]);
    out.extend_from_slice(b(&i.int_input[..sizes.get(Table::IntInput)]));
    out.extend_from_slice(b(&i.dint_input[..sizes.get(Table::DintInput)]));
    out.extend_from_slice(b(&i.lint_input[..sizes.get(Table::LintInput)]));
    out
}

fn program_inputs(rig: &InProcess) -> &shared_abi::image::InputImage {
    &rig.engine.program().expect("program").image().inputs
}

#[test]
fn only_changed_input_areas_are_copied_yet_the_image_always_matches_the_client() {
    let mut rig = InProcess::new();
    rig.load_fixture_sized(&[], LEGACY);
    type Change = fn(&mut shared_abi::image::InputImage, u64);
    let steps: [Change; 5] = [
        |i, v| i.bool_input[(v % 1024) as usize][(v % 8) as usize] ^= 1,
        |i, v| i.byte_input[(v % 1024) as usize] = v as u8,
        |i, v| i.int_input[(v % 1024) as usize] = v as u16,
        |i, v| i.dint_input[(v % 1024) as usize] = v as u32,
        |i, v| i.lint_input[(v % 1024) as usize] = v,
    ];
    for round in 0..200u64 {
        // Sometimes several snapshots arrive between two cycles: then rt-core must notice
        // it missed one and copy everything.
        let publishes = 1 + round % 3;
        for p in 0..publishes {
            let change = steps[((round + p) % 5) as usize];
            rig.client.update_inputs(|i| change(i, round * 7 + p));
        }
        rig.cycle();
        let sizes = ImageSizes::LEGACY;
        assert_eq!(
            input_prefixes(program_inputs(&rig), &sizes),
            input_prefixes(rig.client.inputs(), &sizes),
            "round {round}: the program's inputs differ from what the client published"
        );
    }
    // Past the program's tables nothing is copied: the scan's cost follows the program.
    rig.client.update_inputs(|i| i.int_input[5000] = 77);
    rig.cycle();
    assert_eq!(program_inputs(&rig).int_input[5000], 0);
}

#[test]
fn a_new_program_starts_with_the_current_inputs() {
    let mut rig = InProcess::new();
    rig.client.update_inputs(|i| i.int_input[0] = 1234);
    rig.load_fixture_sized(&[], LEGACY);
    rig.cycle();
    assert_eq!(program_inputs(&rig).int_input[0], 1234, "published before the program existed");
    rig.client.update_inputs(|i| i.dint_input[5] = 99);
    rig.load_fixture_sized(&["COUNTER_STEP=2"], LEGACY);
    rig.cycle();
    let inputs = program_inputs(&rig);
    assert_eq!((inputs.int_input[0], inputs.dint_input[5]), (1234, 99), "a swapped-in program sees every area");
}

#[test]
fn outputs_beyond_the_program_are_published_once_written() {
    let mut rig = InProcess::new();
    rig.load_fixture_sized(&[], LEGACY);
    rig.cycle();
    let addr = IecAddress::parse("%ML900").unwrap();
    let outside = IecAddress::parse("%ML1024").unwrap();
    rig.client.write(addr, 0xDEAD_BEEF_0000_0001).unwrap();
    rig.client.write(outside, 5).unwrap();
    rig.cycle();
    rig.cycle();
    use shared_abi::client::Reader;
    let outputs = rig.client.outputs().unwrap();
    assert_eq!(outputs.image.get(addr), Some(0xDEAD_BEEF_0000_0001));
    assert_eq!(outputs.sizes, ImageSizes::LEGACY);
    assert_eq!(rig.engine.program().unwrap().image().get(outside), Some(0), "past the tables: refused");
}

#[test]
fn a_program_is_sized_from_its_located_variables_and_its_request() {
    let mut rig = InProcess::new();
    rig.load_fixture(&[]);
    let floor = rig.engine.program().unwrap().info().image_sizes;
    assert!(floor.largest() > 0, "the fixture's located variables size some tables");
    assert!(Table::ALL.iter().any(|&t| floor.get(t) == 0), "tables it does not use stay empty");
    let mut configured = ImageSizes::ZERO;
    configured.set(Table::IntOutput, 4096);
    rig.load_fixture_sized(&["COUNTER_STEP=2"], ImageRequest { configured, square: false });
    let sized = rig.engine.program().unwrap().info().image_sizes;
    assert_eq!(sized.get(Table::IntOutput), 4096.max(floor.get(Table::IntOutput)));
    assert_eq!(sized.get(Table::LintInput), floor.get(Table::LintInput), "the floor holds elsewhere");
    rig.load_fixture_sized(&[], ImageRequest { configured, square: true });
    let square = rig.engine.program().unwrap().info().image_sizes;
    assert!(Table::ALL.iter().all(|&t| square.get(t) == sized.largest()), "one length for every table");
}
