//! The engine driven cycle by cycle in-process.

mod support;

use bytemuck::bytes_of;
use support::InProcess;

fn program_inputs(rig: &InProcess) -> &shared_abi::image::InputImage {
    &rig.engine.program().expect("program").image().inputs
}

#[test]
fn only_changed_input_areas_are_copied_yet_the_image_always_matches_the_client() {
    let mut rig = InProcess::new();
    rig.load_fixture(&[]);
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
        assert_eq!(
            bytes_of(program_inputs(&rig)),
            bytes_of(rig.client.inputs()),
            "round {round}: the program's inputs differ from what the client published"
        );
    }
}

#[test]
fn a_new_program_starts_with_the_current_inputs() {
    let mut rig = InProcess::new();
    rig.client.update_inputs(|i| i.int_input[0] = 1234);
    rig.load_fixture(&[]);
    rig.cycle();
    assert_eq!(program_inputs(&rig).int_input[0], 1234, "published before the program existed");
    rig.client.update_inputs(|i| i.dint_input[5] = 99);
    rig.load_fixture(&["COUNTER_STEP=2"]);
    rig.cycle();
    let inputs = program_inputs(&rig);
    assert_eq!((inputs.int_input[0], inputs.dint_input[5]), (1234, 99), "a swapped-in program sees every area");
}

#[test]
fn outputs_beyond_the_program_are_published_once_written() {
    let mut rig = InProcess::new();
    rig.load_fixture(&[]);
    rig.cycle();
    let addr = shared_abi::image::IecAddress::parse("%ML900").unwrap();
    rig.client.write(addr, 0xDEAD_BEEF_0000_0001).unwrap();
    rig.cycle();
    rig.cycle();
    use shared_abi::client::Reader;
    assert_eq!(rig.client.outputs().unwrap().image.get(addr), Some(0xDEAD_BEEF_0000_0001));
}
