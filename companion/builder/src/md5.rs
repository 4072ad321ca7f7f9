//! The program's MD5, as the Editor's debugger compares it: the Editor's copy (in
//! `program.st`, or a STruC++ `defines.h`) and the program's own (MatIEC `debug.c`, STruC++
//! `debug-map.json`). When they differ, the Editor's debugger will not attach: the build
//! says so.

use serde::Deserialize;
use std::fs;
use std::io::Read;
use std::path::Path;

/// Largest text file the builder reads itself (program.st, debug.c, defines.h, VARIABLES.csv,
/// and a STruC++ bundle's generated.hpp, generated_debug.cpp, debug-map.json).
pub(crate) const MAX_TEXT_BYTES: u64 = 64 << 20;

/// The program's MD5 as the Editor sees it: from `program.st`'s
/// `(*DBG:char md5[] = "<32 hex>";*)` line, else from a STruC++ `defines.h`
/// (`#define PROGRAM_MD5 "<32 hex>"`). Lower case.
pub fn program_md5(dir: &Path) -> Option<String> {
    if let Some(text) = read_text(&dir.join("program.st"))
        && let Some(md5) = find_md5(&text, b"(*DBG:char md5[] = \"", &[b"\";*)", b"\"*)"])
    {
        return Some(md5);
    }
    let defines = read_text(&dir.join("defines.h"))?;
    find_md5(&defines, b"PROGRAM_MD5 \"", &[b"\""])
}

/// The MD5 `debug.c` compiles into the program (`char plc_program_md5[] = "..."`).
pub(crate) fn debug_c_md5(dir: &Path) -> Option<String> {
    let text = read_text(&dir.join("debug.c"))?;
    find_md5(&text, b"plc_program_md5[] = \"", &[b"\""])
}

/// The MD5 the Editor wrote into a STruC++ `debug-map.json` (its `"md5"` member).
pub(crate) fn debug_map_md5(dir: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct DebugMap {
        md5: Option<String>,
    }
    let text = read_text(&dir.join("debug-map.json"))?;
    let map: DebugMap = serde_json::from_slice(&text).ok()?;
    map.md5.filter(|m| is_md5(m.as_bytes())).map(|m| m.to_ascii_lowercase())
}

/// One place an MD5 is written down, and what to say when it is not.
pub(crate) struct Witness {
    /// The file, as the warning names it.
    pub file: &'static str,
    pub md5: Option<String>,
    /// The warning when the file carries no MD5 (`None`: nothing to say).
    pub when_missing: Option<&'static str>,
}

/// The warning the build shows when the Editor's copy of the MD5 and the program's own
/// differ, or one of them is missing.
pub(crate) fn mismatch_warning(editor: &Witness, program: &Witness) -> Option<String> {
    match (&editor.md5, &program.md5) {
        (Some(a), Some(b)) if a != b => Some(format!(
            "{} says the program MD5 is {a} but {} says {b}; the Editor's debugger will not attach",
            editor.file, program.file
        )),
        (None, _) => editor.when_missing.map(String::from),
        (_, None) => program.when_missing.map(String::from),
        _ => None,
    }
}

fn is_md5(hex: &[u8]) -> bool {
    hex.len() == 32 && hex.iter().all(u8::is_ascii_hexdigit)
}

/// The first 32 hex digits that follow `prefix` and are followed by one of `suffixes`.
fn find_md5(text: &[u8], prefix: &[u8], suffixes: &[&[u8]]) -> Option<String> {
    let mut from = 0;
    while let Some(at) = find(&text[from..], prefix) {
        let start = from + at + prefix.len();
        if let Some(hex) = text.get(start..start + 32)
            && is_md5(hex)
            && suffixes.iter().any(|s| text[start + 32..].starts_with(s))
        {
            return Some(String::from_utf8_lossy(hex).to_ascii_lowercase());
        }
        from = start;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A text file of the bundle, at most [`MAX_TEXT_BYTES`]; `None` when it cannot be read.
pub(crate) fn read_text(path: &Path) -> Option<Vec<u8>> {
    let mut text = Vec::new();
    fs::File::open(path).ok()?.take(MAX_TEXT_BYTES).read_to_end(&mut text).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_md5_like_the_editor() {
        let md5 = "0123456789abcdefABCDEF0123456789";
        for trailer in [format!("(*DBG:char md5[] = \"{md5}\";*)"), format!("(*DBG:char md5[] = \"{md5}\"*)")] {
            let text = format!("PROGRAM x\nEND_PROGRAM\n\n{trailer}\n(*DBG:rest*)");
            let found = find_md5(text.as_bytes(), b"(*DBG:char md5[] = \"", &[b"\";*)", b"\"*)"]);
            assert_eq!(found.as_deref(), Some("0123456789abcdefabcdef0123456789"));
        }
        for bad in [
            "(*DBG:char md5[] = \"0123\";*)",
            "(*DBG:char md5[] = \"0123456789abcdef0123456789abcdeg\";*)",
            "(*DBG:char md5[] = \"0123456789abcdef0123456789abcdef\";",
            "(*DBG:char md5[] = \"",
        ] {
            assert_eq!(find_md5(bad.as_bytes(), b"(*DBG:char md5[] = \"", &[b"\";*)", b"\"*)"]), None, "{bad}");
        }
    }

    #[test]
    fn reads_the_debug_maps_md5_as_json_whatever_its_spacing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let md5 = "E2895D32C3671083340F0EE26E3D1516";
        for text in [
            format!("{{\"version\": 2, \"md5\": \"{md5}\"}}"),
            format!("{{\n  \"md5\"\t:\n\"{md5}\",\"leaves\":[]}}"),
            format!("{{\"arrays\":[{{\"md5\":\"not this one\"}}],\"md5\":\"{md5}\"}}"),
        ] {
            fs::write(dir.path().join("debug-map.json"), text).expect("write");
            assert_eq!(debug_map_md5(dir.path()).as_deref(), Some("e2895d32c3671083340f0ee26e3d1516"));
        }
        for text in ["{\"md5\": \"0123\"}", "{\"version\": 2}", "not json", "{\"md5\": 5}"] {
            fs::write(dir.path().join("debug-map.json"), text).expect("write");
            assert_eq!(debug_map_md5(dir.path()), None, "{text}");
        }
    }

    #[test]
    fn one_warning_for_both_generations() {
        let w = |file, md5: Option<&str>, when_missing| Witness { file, md5: md5.map(String::from), when_missing };
        let a = "0123456789abcdef0123456789abcdef";
        let b = "fedcba9876543210fedcba9876543210";
        assert_eq!(
            mismatch_warning(&w("program.st", Some(a), Some("no st")), &w("debug.c", Some(b), Some("no c"))),
            Some(format!(
                "program.st says the program MD5 is {a} but debug.c says {b}; the Editor's debugger will not attach"
            ))
        );
        assert_eq!(mismatch_warning(&w("p", Some(a), None), &w("d", Some(a), None)), None);
        assert_eq!(
            mismatch_warning(&w("p", None, Some("no st")), &w("d", None, Some("no c"))).as_deref(),
            Some("no st")
        );
        assert_eq!(
            mismatch_warning(&w("p", Some(a), Some("no st")), &w("d", None, Some("no c"))).as_deref(),
            Some("no c")
        );
        assert_eq!(mismatch_warning(&w("p", Some(a), None), &w("d", None, None)), None);
    }
}
