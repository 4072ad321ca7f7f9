//! `image.conf`: the image table sizes an upload asks for (Editor ≥ 4.3, runtime PR #195).
//!
//! Flat `key=value` lines, `#` comments. The newest upstream format (`format_version=2`) is
//! the one read: each of the fourteen tables as `<table>=<count> <unit>`, the count in the
//! unit of the addresses the table stores — `bits` for the three BOOL tables (`%IX`, `%QX`,
//! `%MX`), `bytes`, `words`, `dwords`, `lwords` for the others — so a BOOL table of 64
//! bits is 8 elements. A file without `format_version=2`, a unit that is not the table's,
//! a count that is not a whole number or is past 65 536 elements is refused whole, with a
//! message naming the line: the build fails and the running program is kept. Unknown keys
//! are ignored (a newer Editor may know more tables), absent tables count zero, and every
//! table is then raised by rt-core to what the program's located variables reach.
//!
//! Upstream's versions disagree: the first form of PR #195 read bare element counts
//! (`bool_output=8`, bytes for BOOL tables, no version line); the newer runtime and Editor
//! write and require `format_version=2` with units. This follows the newer one.

use shared_abi::image::TABLE_CAPACITY;
use shared_abi::sizes::{ImageSizes, Table};
use std::fmt;

/// The file name, at the root of the uploaded bundle.
pub const FILE_NAME: &str = "image.conf";
/// The format this runtime reads.
pub const FORMAT_VERSION: u32 = 2;
/// Larger files are refused unread (the real one is under 2 KiB).
pub const MAX_BYTES: usize = 64 * 1024;

/// Why an `image.conf` is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageConfError {
    TooLarge {
        bytes: usize,
    },
    NotUtf8,
    /// No `format_version` line, or another version.
    Version {
        found: Option<String>,
    },
    /// A table given twice.
    Duplicate {
        line: usize,
        key: &'static str,
    },
    /// The unit is missing or not the table's.
    Unit {
        line: usize,
        key: &'static str,
        expected: &'static str,
        found: String,
    },
    /// The count is not a whole, non-negative number.
    Count {
        line: usize,
        key: &'static str,
        found: String,
    },
    /// More than a table holds.
    OverCapacity {
        line: usize,
        key: &'static str,
        count: u64,
        unit: &'static str,
        ceiling: u64,
    },
}

impl fmt::Display for ImageConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageConfError::TooLarge { bytes } => {
                write!(f, "image.conf is {bytes} bytes; at most {MAX_BYTES} are read")
            }
            ImageConfError::NotUtf8 => write!(f, "image.conf is not UTF-8 text"),
            ImageConfError::Version { found: None } => write!(
                f,
                "image.conf has no format_version line; this runtime reads format_version={FORMAT_VERSION} (re-upload the project from a current Editor)"
            ),
            ImageConfError::Version { found: Some(v) } => write!(
                f,
                "image.conf declares format_version {v}; this runtime reads format_version {FORMAT_VERSION} (re-upload the project from a current Editor)"
            ),
            ImageConfError::Duplicate { line, key } => write!(f, "image.conf line {line}: {key} is given twice"),
            ImageConfError::Unit { line, key, expected, found } => {
                let found = if found.is_empty() { "no unit" } else { found };
                write!(f, "image.conf line {line}: {key} must be given in {expected} (got {found})")
            }
            ImageConfError::Count { line, key, found } => {
                write!(f, "image.conf line {line}: {key} must be a whole, non-negative number (got {found:?})")
            }
            ImageConfError::OverCapacity { line, key, count, unit, ceiling } => write!(
                f,
                "image.conf line {line}: {key} asks for {count} {unit}; a table holds at most {TABLE_CAPACITY} elements ({ceiling} {unit})"
            ),
        }
    }
}

impl std::error::Error for ImageConfError {}

/// The unit a table's count is written in.
pub fn unit_of(table: Table) -> &'static str {
    match table {
        Table::BoolInput | Table::BoolOutput | Table::BoolMemory => "bits",
        Table::ByteInput | Table::ByteOutput => "bytes",
        Table::IntInput | Table::IntOutput | Table::IntMemory => "words",
        Table::DintInput | Table::DintOutput | Table::DintMemory => "dwords",
        Table::LintInput | Table::LintOutput | Table::LintMemory => "lwords",
    }
}

/// Parses an `image.conf` into the table sizes it configures (in elements).
pub fn parse(bytes: &[u8]) -> Result<ImageSizes, ImageConfError> {
    if bytes.len() > MAX_BYTES {
        return Err(ImageConfError::TooLarge { bytes: bytes.len() });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ImageConfError::NotUtf8)?;
    let mut version: Option<String> = None;
    let mut seen = [false; 14];
    let mut sizes = ImageSizes::ZERO;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else { continue };
        let (key, value) = (key.trim(), value.trim());
        if key == "format_version" {
            version = Some(value.chars().take(32).collect());
            continue;
        }
        let Some(table) = Table::ALL.into_iter().find(|t| t.key() == key) else { continue };
        let key = table.key();
        if std::mem::replace(&mut seen[table as usize], true) {
            return Err(ImageConfError::Duplicate { line, key });
        }
        let (count, unit) = match value.split_once(char::is_whitespace) {
            Some((c, u)) => (c.trim(), u.trim()),
            None => (value, ""),
        };
        let expected = unit_of(table);
        if unit != expected {
            return Err(ImageConfError::Unit { line, key, expected, found: unit.chars().take(32).collect() });
        }
        let count: u64 = match count.parse() {
            Ok(n) if !count.starts_with('+') => n,
            _ => return Err(ImageConfError::Count { line, key, found: count.chars().take(32).collect() }),
        };
        let per_element = if table.is_bits() { 8 } else { 1 };
        let ceiling = (TABLE_CAPACITY * per_element) as u64;
        if count > ceiling {
            return Err(ImageConfError::OverCapacity { line, key, count, unit: expected, ceiling });
        }
        sizes.set(table, count.div_ceil(per_element as u64) as usize);
    }
    match version {
        Some(v) if v.parse::<u32>() == Ok(FORMAT_VERSION) => Ok(sizes),
        found => Err(ImageConfError::Version { found }),
    }
}

/// What an upload's `image.conf` says, from its bundle root: `Ok(None)` without one.
pub fn read(bundle_root: &std::path::Path) -> Result<Option<ImageSizes>, ImageConfError> {
    let path = bundle_root.join(FILE_NAME);
    let Ok(meta) = std::fs::symlink_metadata(&path) else { return Ok(None) };
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.len() > MAX_BYTES as u64 {
        return Err(ImageConfError::TooLarge { bytes: meta.len() as usize });
    }
    match std::fs::read(&path) {
        Ok(bytes) => parse(&bytes).map(Some),
        Err(_) => Ok(None),
    }
}

/// The sizes the program at `library` (a stored program's `program.so`, its bundle in
/// `src/` beside it) was built with; zero (sized from the program alone) without a valid
/// `image.conf` (it was checked when the program was built).
pub fn configured_for_library(library: &std::path::Path) -> ImageSizes {
    library.parent().map(|dir| dir.join("src")).and_then(|src| read(&src).ok().flatten()).unwrap_or(ImageSizes::ZERO)
}

/// One line for the build log: the tables the file sizes (`int_output=4096 words, …`).
pub fn describe(sizes: &ImageSizes) -> String {
    let used: Vec<String> = Table::ALL
        .iter()
        .filter(|&&t| sizes.get(t) > 0)
        .map(|&t| {
            let n = sizes.get(t);
            if t.is_bits() { format!("{}={} bits", t.key(), n * 8) } else { format!("{}={n} {}", t.key(), unit_of(t)) }
        })
        .collect();
    if used.is_empty() { "every table zero".into() } else { used.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDITOR: &str = "# I/O image sizes for this program.\n# Emitted by the OpenPLC editor\nformat_version=2\n\
        bool_input=16 bits\nbool_output=64 bits\nbyte_input=0 bytes\nbyte_output=0 bytes\nint_input=32 words\n\
        int_output=4096 words\ndint_input=0 dwords\ndint_output=0 dwords\nlint_input=0 lwords\nlint_output=0 lwords\n\
        int_memory=20 words\ndint_memory=0 dwords\nlint_memory=0 lwords\nbool_memory=9 bits\n";

    #[test]
    fn reads_what_the_newest_editor_writes() {
        let sizes = parse(EDITOR.as_bytes()).unwrap();
        assert_eq!(sizes.get(Table::BoolInput), 2, "16 bits are 2 elements");
        assert_eq!(sizes.get(Table::BoolOutput), 8);
        assert_eq!(sizes.get(Table::BoolMemory), 2, "9 bits round up to 2 bytes");
        assert_eq!(sizes.get(Table::IntOutput), 4096);
        assert_eq!(sizes.get(Table::IntMemory), 20);
        assert_eq!(sizes.get(Table::LintInput), 0);
        assert_eq!(
            describe(&sizes),
            "bool_input=16 bits, bool_output=64 bits, int_input=32 words, int_output=4096 words, int_memory=20 words, bool_memory=16 bits"
        );
    }

    #[test]
    fn absent_tables_are_zero_and_unknown_keys_are_ignored() {
        let sizes = parse(b"format_version = 2\r\nint_memory = 7 words\r\nbyte_memory=3 bytes\nfuture_table=9 zorks\n")
            .unwrap();
        assert_eq!(sizes.get(Table::IntMemory), 7);
        assert_eq!(sizes.largest(), 7);
    }

    #[test]
    fn the_limit_is_65536_elements_in_each_tables_own_unit() {
        assert!(parse(b"format_version=2\nint_output=65536 words\nbool_output=524288 bits\n").is_ok());
        let e = parse(b"format_version=2\nint_output=65537 words\n").unwrap_err();
        assert!(matches!(e, ImageConfError::OverCapacity { line: 2, key: "int_output", .. }), "{e}");
        assert!(e.to_string().contains("at most 65536"), "{e}");
        let e = parse(b"format_version=2\nbool_input=524289 bits\n").unwrap_err();
        assert!(matches!(e, ImageConfError::OverCapacity { key: "bool_input", ceiling: 524_288, .. }), "{e}");
    }

    #[test]
    fn malformed_files_are_refused_with_the_line_and_the_reason() {
        let cases: [(&[u8], &str); 9] = [
            (b"int_output=4 words\n", "no format_version line"),
            (b"format_version=1\nint_output=4 words\n", "format_version 1"),
            (b"format_version=2\nint_output=4\n", "line 2: int_output must be given in words (got no unit)"),
            (b"format_version=2\nbool_output=8 bytes\n", "bool_output must be given in bits (got bytes)"),
            (b"format_version=2\nint_output=4.5 words\n", "whole, non-negative number (got \"4.5\")"),
            (b"format_version=2\nint_output=-1 words\n", "(got \"-1\")"),
            (b"format_version=2\nint_output=99999999999999999999999 words\n", "whole, non-negative"),
            (b"format_version=2\nint_output=1 words\nint_output=2 words\n", "line 3: int_output is given twice"),
            (b"format_version=2\n\xff\n", "not UTF-8"),
        ];
        for (input, expected) in cases {
            let e = parse(input).unwrap_err().to_string();
            assert!(e.contains(expected), "{:?}: {e}", String::from_utf8_lossy(input));
        }
        assert!(matches!(parse(&vec![b'#'; MAX_BYTES + 1]), Err(ImageConfError::TooLarge { .. })));
    }
}
