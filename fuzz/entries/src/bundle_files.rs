//! `bundle_files`: the text files of an uploaded bundle the runtime reads itself: MatIEC's
//! `VARIABLES.csv` (`openplc_builder::matiec_variables`, `matiec_retain_indices`,
//! `companion::variables::from_matiec_csv`), STruC++'s `debug-map.json`
//! (`companion::variables::from_debug_map`, against a few loaded-program shapes), the
//! program MD5 in `program.st` / `defines.h` (`openplc_builder::program_md5`) and the `TASK`
//! declarations of `program.st` (`companion::program::tasks::parse`).

use crate::support::scratch_dir;
use openplc_companion::program::tasks::{self, MAX_TASKS};
use openplc_companion::variables;
use shared_abi::debug::ProgramInfo;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    matiec_csv(text);
    for groups in [&[27][..], &[2, 0, 3], &[]] {
        debug_map(text, &program(groups));
    }
    md5_files(data);
    task_declarations(text);
}

fn task_declarations(text: &str) {
    let declared = tasks::parse(text);
    assert!(declared.len() <= MAX_TASKS);
    for task in &declared {
        assert!(!task.name.is_empty() && task.name.len() <= 64, "{task:?}");
        assert!(task.name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'), "{task:?}");
        assert!(text.to_ascii_uppercase().contains(&task.name), "a name the source holds: {task:?}");
    }
}

fn matiec_csv(text: &str) {
    let Ok(vars) = openplc_builder::matiec_variables(text) else {
        assert!(variables::from_matiec_csv(text).is_err(), "both readers refuse the same file");
        return;
    };
    for (i, v) in vars.iter().enumerate() {
        assert_eq!(v.index as usize, i, "debug indices run in order");
    }
    let (retain, count) =
        openplc_builder::matiec_retain_indices(text).unwrap_or_else(|e| panic!("variables read, retain not: {e}"));
    assert_eq!(count as usize, vars.len());
    assert!(retain.iter().all(|&i| vars[i as usize].retain));
    assert_eq!(retain.len(), vars.iter().filter(|v| v.retain).count());
    let named = variables::from_matiec_csv(text).unwrap_or_else(|e| panic!("builder reads it, companion not: {e}"));
    assert_eq!(named.len(), vars.len());
}

fn debug_map(text: &str, info: &ProgramInfo) {
    if let Ok(vars) = variables::from_debug_map(text, info) {
        assert_eq!(vars.len(), info.var_count as usize, "every variable of the program is named");
        for (i, v) in vars.iter().enumerate() {
            assert_eq!(v.index as usize, i);
        }
    }
}

/// A loaded program with these group (array) lengths.
fn program(groups: &[u32]) -> ProgramInfo {
    let mut info: ProgramInfo = bytemuck::Zeroable::zeroed();
    info.program_gen = 1;
    info.group_count = groups.len() as u32;
    info.group_len[..groups.len()].copy_from_slice(groups);
    info.var_count = groups.iter().sum();
    info
}

fn md5_files(data: &[u8]) {
    let scratch = scratch_dir();
    for name in ["program.st", "defines.h"] {
        let dir = scratch.path().join(name.replace('.', "_"));
        std::fs::create_dir(&dir).and_then(|()| std::fs::write(dir.join(name), data)).unwrap_or_else(|e| {
            panic!("fuzz harness: {e}");
        });
        if let Some(md5) = openplc_builder::program_md5(&dir) {
            assert_eq!(md5.len(), 32);
            assert!(md5.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{md5:?}");
            let lower = String::from_utf8_lossy(data).to_ascii_lowercase();
            assert!(lower.contains(&md5), "the MD5 is one the file holds");
        }
    }
}
