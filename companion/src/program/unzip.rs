//! Safe extraction of an uploaded `program.zip` into a fresh directory.
//!
//! The Editor zips its `src/` folder with entries at the root, `lib/` and `conf/`
//! sub-folders, and on Windows backslash separators. Checks, as upstream's plus a few:
//! backslashes become slashes; absolute paths, `..`, `:` (drive letters, NTFS streams),
//! NUL and symlinks are refused; upstream's limits hold (10 MiB per file, 50 MiB in total,
//! compression ratio 1000) and are enforced on the bytes actually inflated, not only on
//! what the headers claim; files are created with `create_new` in a directory nobody
//! else has written to, so nothing existing is followed or overwritten.
//!
//! A zip that breaks a rule is [`UnzipError::Refused`] ("failed safety checks"); a write
//! that fails (a full device above all) is [`UnzipError::Write`], which says so. The caller
//! removes the half-extracted folder either way.

use openplc_builder::storage_problem;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
pub const MAX_TOTAL_BYTES: u64 = 50 * 1024 * 1024;
pub const MAX_RATIO: u64 = 1000;
pub const MAX_ENTRIES: usize = 10_000;
/// Upstream's refused extensions.
const REFUSED_EXTENSIONS: &[&str] = &["exe", "dll", "sh", "bat", "js", "vbs", "scr"];

#[derive(Debug, thiserror::Error)]
pub enum UnzipError {
    /// The upload breaks a rule (a name, a size, a ratio) or is no readable zip.
    #[error("{0}")]
    Refused(String),
    /// Writing the extracted files failed.
    #[error("{}: {what}", storage_problem(source).unwrap_or("cannot write"))]
    Write { what: String, source: io::Error },
}

impl UnzipError {
    /// The refusal's text, for a refused upload.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            UnzipError::Refused(why) => Some(why),
            UnzipError::Write { .. } => None,
        }
    }

    /// Whether a write failed because of the storage (full, over quota, failing).
    pub fn is_storage(&self) -> bool {
        matches!(self, UnzipError::Write { source, .. } if storage_problem(source).is_some())
    }

    fn write(what: impl std::fmt::Display, source: io::Error) -> UnzipError {
        UnzipError::Write { what: format!("extracting {what} ({source})"), source }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Extracted {
    pub files: usize,
    pub bytes: u64,
}

struct Planned {
    index: usize,
    path: PathBuf,
    is_dir: bool,
}

/// Extracts `zip` into `dest`, which must not exist yet.
pub fn extract(zip: &Path, dest: &Path) -> Result<Extracted, UnzipError> {
    let file = File::open(zip).map_err(|e| UnzipError::Refused(format!("cannot open the upload: {e}")))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| UnzipError::Refused(format!("the upload is not a valid zip file ({e})")))?;
    if archive.len() > MAX_ENTRIES {
        return Err(UnzipError::Refused(format!("too many entries ({} > {MAX_ENTRIES})", archive.len())));
    }
    let plan = plan(&mut archive)?;
    fs::create_dir(dest).map_err(|e| UnzipError::write(dest.display(), e))?;
    let mut total = 0u64;
    let mut files = 0usize;
    for item in &plan {
        let target = dest.join(&item.path);
        if item.is_dir {
            fs::create_dir_all(&target).map_err(|e| UnzipError::write(item.path.display(), e))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| UnzipError::write(item.path.display(), e))?;
        }
        let mut entry = archive
            .by_index(item.index)
            .map_err(|e| UnzipError::Refused(format!("{}: cannot read the entry ({e})", item.path.display())))?;
        let mut out = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&target).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                UnzipError::Refused(format!("{}: duplicate entry", item.path.display()))
            } else {
                UnzipError::write(item.path.display(), e)
            }
        })?;
        let budget = MAX_FILE_BYTES.min(MAX_TOTAL_BYTES - total);
        let written = copy_limited(&mut entry, &mut out, budget).map_err(|e| match e {
            Copy::Read(e) => UnzipError::Refused(format!("{}: cannot inflate the entry ({e})", item.path.display())),
            Copy::Write(e) => UnzipError::write(item.path.display(), e),
        })?;
        let Some(written) = written else {
            return Err(if budget < MAX_FILE_BYTES {
                UnzipError::Refused(format!("the files inflate to more than {} MiB in total", MAX_TOTAL_BYTES >> 20))
            } else {
                UnzipError::Refused(format!(
                    "{}: inflates to more than {} MiB",
                    item.path.display(),
                    MAX_FILE_BYTES >> 20
                ))
            });
        };
        total += written;
        files += 1;
    }
    Ok(Extracted { files, bytes: total })
}

/// Checks every entry's metadata before anything is written.
fn plan<R: Read + io::Seek>(archive: &mut zip::ZipArchive<R>) -> Result<Vec<Planned>, UnzipError> {
    let mut planned = Vec::new();
    let mut declared_total = 0u64;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|e| UnzipError::Refused(format!("entry {index}: {e}")))?;
        let raw = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let name = raw.replace('\\', "/");
        if name.starts_with("__MACOSX/") || name.rsplit('/').next() == Some(".DS_Store") {
            continue;
        }
        let path =
            safe_relative(&name).map_err(|why| UnzipError::Refused(format!("unsafe entry name {raw:?}: {why}")))?;
        if entry.is_symlink() {
            return Err(UnzipError::Refused(format!("unsafe entry {raw:?}: symbolic links are not accepted")));
        }
        let is_dir = name.ends_with('/') || entry.is_dir();
        if path.as_os_str().is_empty() {
            if is_dir {
                continue;
            }
            return Err(UnzipError::Refused(format!("unsafe entry name {raw:?}: empty path")));
        }
        if !is_dir {
            if let Some(ext) = path.extension().and_then(|e| e.to_str())
                && REFUSED_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())
            {
                return Err(UnzipError::Refused(format!("{raw:?}: .{ext} files are not accepted")));
            }
            let size = entry.size();
            if size > MAX_FILE_BYTES {
                return Err(UnzipError::Refused(format!(
                    "{raw:?} is {} MiB, over the {} MiB limit",
                    size >> 20,
                    MAX_FILE_BYTES >> 20
                )));
            }
            let compressed = entry.compressed_size();
            if size > 0 && size > compressed.saturating_mul(MAX_RATIO) {
                return Err(UnzipError::Refused(format!(
                    "{raw:?} has a compression ratio over {MAX_RATIO} (a zip bomb?)"
                )));
            }
            declared_total += size;
            if declared_total > MAX_TOTAL_BYTES {
                return Err(UnzipError::Refused(format!(
                    "the files inflate to more than {} MiB in total",
                    MAX_TOTAL_BYTES >> 20
                )));
            }
        }
        planned.push(Planned { index, path, is_dir });
    }
    strip_common_root(&mut planned);
    Ok(planned)
}

/// A relative path with only normal components, or why not.
fn safe_relative(name: &str) -> Result<PathBuf, &'static str> {
    if name.starts_with('/') {
        return Err("absolute path");
    }
    if name.contains(':') {
        return Err("':' is not allowed");
    }
    if name.contains('\0') {
        return Err("NUL in the name");
    }
    let mut out = PathBuf::new();
    for comp in Path::new(name).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err("'..' is not allowed"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok(out)
}

/// If every entry sits under one top-level folder (a zip made by hand of the folder rather
/// than of its contents), drops that folder.
fn strip_common_root(planned: &mut [Planned]) {
    let first_of = |p: &Path| p.components().next().map(|c| c.as_os_str().to_owned());
    let Some(root) = planned.iter().find(|p| !p.is_dir).and_then(|p| first_of(&p.path)) else { return };
    let all_under = planned
        .iter()
        .all(|p| first_of(&p.path).as_ref() == Some(&root) && (p.is_dir || p.path.components().count() > 1));
    if !all_under {
        return;
    }
    for p in planned.iter_mut() {
        p.path = p.path.components().skip(1).collect();
    }
}

/// Why a copy stopped: the entry could not be inflated, or its bytes could not be written.
enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copies at most `limit` bytes; `None` when the source has more.
fn copy_limited(src: &mut impl Read, dst: &mut impl Write, limit: u64) -> Result<Option<u64>, Copy> {
    let mut limited = src.take(limit + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let got = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        dst.write_all(&buf[..got]).map_err(Copy::Write)?;
        n += got as u64;
    }
    dst.flush().map_err(Copy::Write)?;
    if n > limit { Ok(None) } else { Ok(Some(n)) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;
    use zip::write::SimpleFileOptions;

    pub(crate) fn make_zip(path: &Path, entries: &[(&str, &[u8])], method: zip::CompressionMethod) {
        let mut w = zip::ZipWriter::new(File::create(path).unwrap());
        let opts = SimpleFileOptions::default().compression_method(method);
        for (name, data) in entries {
            if name.ends_with('/') {
                w.add_directory(*name, opts).unwrap();
            } else {
                w.start_file(*name, opts).unwrap();
                w.write_all(data).unwrap();
            }
        }
        w.finish().unwrap();
    }

    fn stored(entries: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("program.zip");
        make_zip(&zip, entries, zip::CompressionMethod::Stored);
        (dir, zip)
    }

    #[test]
    fn editor_layout_with_backslashes_extracts() {
        let (dir, zip) = stored(&[
            ("Config0.c", b"int a;"),
            ("lib\\iec_types.h", b"/* h */"),
            ("conf\\modbus_slave.json", b"{}"),
            ("lib/", b""),
        ]);
        let dest = dir.path().join("src");
        let got = extract(&zip, &dest).unwrap();
        assert_eq!(got.files, 3);
        assert_eq!(fs::read(dest.join("lib/iec_types.h")).unwrap(), b"/* h */");
        assert!(dest.join("conf/modbus_slave.json").exists());
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in ["../evil.c", "a/../../evil.c", "/etc/passwd", "C:\\x.c", "a\\..\\..\\x.c", "run.sh"] {
            let (dir, zip) = stored(&[("ok.c", b"x"), (bad, b"x")]);
            let dest = dir.path().join("src");
            let err = extract(&zip, &dest).unwrap_err();
            assert!(err.refusal().is_some(), "{bad}: refused ({err})");
            assert!(!dest.exists(), "{bad}: nothing is written when the plan fails ({err})");
        }
    }

    #[test]
    fn common_root_folder_is_stripped_and_macos_junk_skipped() {
        let (dir, zip) =
            stored(&[("proj/Config0.c", b"x"), ("proj/lib/a.h", b"y"), ("__MACOSX/proj/._Config0.c", b"junk")]);
        let dest = dir.path().join("src");
        extract(&zip, &dest).unwrap();
        assert!(dest.join("Config0.c").exists());
        assert!(dest.join("lib/a.h").exists());
        assert!(!dest.join("__MACOSX").exists());
    }

    #[test]
    fn bombs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("bomb.zip");
        let zeros = vec![0u8; 11 * 1024 * 1024];
        make_zip(&zip, &[("Config0.c", b"x"), ("big.c", &zeros)], zip::CompressionMethod::Deflated);
        let err = extract(&zip, &dir.path().join("src")).unwrap_err();
        let why = err.refusal().expect("refused");
        assert!(why.contains("limit") || why.contains("ratio"), "{err}");
    }

    #[test]
    fn lying_headers_are_caught_while_inflating() {
        let mut data = Vec::new();
        data.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
        let mut out = Vec::new();
        assert_eq!(copy_limited(&mut Cursor::new(&data), &mut out, 1024).ok(), Some(None));
        assert_eq!(copy_limited(&mut Cursor::new(&data[..1024]), &mut out, 1024).ok(), Some(Some(1024)));
    }

    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("link.zip");
        let mut w = zip::ZipWriter::new(File::create(&zip).unwrap());
        w.add_symlink("lib", "/etc", SimpleFileOptions::default()).unwrap();
        w.finish().unwrap();
        let err = extract(&zip, &dir.path().join("src")).unwrap_err();
        assert!(err.refusal().is_some_and(|why| why.contains("symbolic")), "{err}");
    }

    #[test]
    fn not_a_zip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.zip");
        fs::write(&p, b"hello").unwrap();
        let err = extract(&p, &dir.path().join("src")).unwrap_err();
        assert!(err.refusal().is_some_and(|why| why.contains("not a valid zip")), "{err}");
    }
}
