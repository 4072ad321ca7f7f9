//! The build folder: the one directory the compilers see, a fresh temporary directory that
//! belongs to the build's account.
//!
//! ```text
//! src/    a copy of the bundle (regular files and directories only)
//! out/    our adapter, its headers and generated tables; the objects; the library
//! bin/    a copy of openplc-rt for the load check
//! tmp/    the compilers' temporary files (TMPDIR)
//! log/    the job runner's script and each job's output (runner/dispatch.rs)
//! pch/    the precompiled header, linked from the build cache when there is one (pch.rs)
//! ```
//!
//! The bundle is copied rather than shown in place so that the compilers (which may run as
//! `nobody`) can read it wherever it lives, and cannot change it. The library leaves the
//! folder by a copy beside its destination and a rename, so a reader sees the old library or
//! the new one, never a part; anything left of a failed build goes with the folder.
//!
//! A folder is locked (`flock`) for as long as its build lives. A process killed mid-build
//! (a companion stopped with SIGKILL, a crash) cannot remove its folder, so the first build
//! of every process removes the folders of that parent whose lock is free and that are
//! older than a minute: builds that died, never one that runs.

use crate::BuildError;
use crate::sandbox::Identity;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Most bytes of a bundle the builder copies (an upload inflates to 50 MiB at most).
const MAX_BUNDLE_BYTES: u64 = 256 << 20;
/// Most files and directories of a bundle.
const MAX_BUNDLE_ENTRIES: usize = 20_000;

pub(crate) const SRC: &str = "src";
pub(crate) const OUT: &str = "out";
pub(crate) const BIN: &str = "bin";
pub(crate) const TMP: &str = "tmp";
pub(crate) const LOG: &str = "log";
pub(crate) const PCH: &str = "pch";

/// Every build folder's name starts with this.
const PREFIX: &str = "openplc-build-";
/// A folder whose lock is free is left alone this long after it was made: its build may
/// have created it and not yet taken the lock.
const STALE_AFTER: Duration = Duration::from_secs(60);

pub(crate) struct BuildFolder {
    // Dropped first: the folder is removed while it is still locked.
    dir: tempfile::TempDir,
    /// The folder's own lock, held for the life of the build.
    _lock: File,
    owner: Option<Identity>,
}

impl BuildFolder {
    /// A fresh folder in `parent` (the system's temporary directory by default), owned by
    /// `owner` when given.
    pub fn create(parent: Option<&Path>, owner: Option<Identity>) -> Result<BuildFolder, BuildError> {
        let parent = parent.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
        static SWEPT: Once = Once::new();
        SWEPT.call_once(|| remove_stale(&parent));
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(&parent)
            .map_err(|e| BuildError::io(format!("cannot create a build folder in {}", parent.display()), e))?;
        let lock = File::open(dir.path())
            .and_then(|d| d.try_lock().map_err(io::Error::from).map(|()| d))
            .map_err(|e| BuildError::io(format!("cannot lock the build folder {}", dir.path().display()), e))?;
        let folder = BuildFolder { dir, _lock: lock, owner };
        folder.own(folder.host())?;
        for sub in [SRC, OUT, BIN, TMP, LOG, PCH] {
            folder.make_dir(&folder.host().join(sub))?;
        }
        Ok(folder)
    }

    /// The folder on the host.
    pub fn host(&self) -> &Path {
        self.dir.path()
    }

    /// Copies the bundle in `bundle` into `src/`: regular files and directories only (a
    /// symbolic link or a device is refused, so nothing outside the bundle is ever read
    /// through it).
    pub fn copy_bundle(&self, bundle: &Path) -> Result<(), BuildError> {
        let mut budget = Budget { bytes: MAX_BUNDLE_BYTES, entries: MAX_BUNDLE_ENTRIES };
        self.copy_tree(bundle, &self.host().join(SRC), bundle, &mut budget)
    }

    fn copy_tree(&self, from: &Path, to: &Path, root: &Path, budget: &mut Budget) -> Result<(), BuildError> {
        let unreadable = |source| BuildError::BundleUnreadable { path: from.to_path_buf(), source };
        let mut entries: Vec<_> =
            fs::read_dir(from).map_err(unreadable)?.collect::<Result<_, _>>().map_err(unreadable)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = path.strip_prefix(root).unwrap_or(&path).display().to_string();
            budget.entries = budget.entries.checked_sub(1).ok_or_else(|| BuildError::NotABundle {
                detail: format!("more than {MAX_BUNDLE_ENTRIES} files and folders"),
            })?;
            let kind =
                entry.file_type().map_err(|source| BuildError::BundleUnreadable { path: path.clone(), source })?;
            let target = to.join(entry.file_name());
            if kind.is_dir() {
                self.make_dir(&target)?;
                self.copy_tree(&path, &target, root, budget)?;
            } else if kind.is_file() {
                self.copy_file(&path, &target, &name, budget)?;
            } else {
                return Err(BuildError::NotABundle {
                    detail: format!("{name} is not a regular file or folder (symbolic links are not followed)"),
                });
            }
        }
        Ok(())
    }

    fn copy_file(&self, from: &Path, to: &Path, name: &str, budget: &mut Budget) -> Result<(), BuildError> {
        let source = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(from)
            .map_err(|source| BuildError::BundleUnreadable { path: from.to_path_buf(), source })?;
        let mut target = self.create_file(to, 0o644)?;
        let copied = copy_reading(&mut source.take(budget.bytes + 1), &mut target)
            .map_err(|e| e.into_build_error(from, &format!("copying the bundle ({name})")))?;
        if copied > budget.bytes {
            return Err(BuildError::NotABundle {
                detail: format!("more than {} MiB of files", MAX_BUNDLE_BYTES >> 20),
            });
        }
        budget.bytes -= copied;
        Ok(())
    }

    /// Writes one of our sources into `out/`.
    pub fn write(&self, name: &str, text: &str) -> Result<(), BuildError> {
        self.write_in(OUT, name, text.as_bytes())
    }

    /// Writes the new file `sub/name`.
    pub fn write_in(&self, sub: &str, name: &str, bytes: &[u8]) -> Result<(), BuildError> {
        let path = self.host().join(sub).join(name);
        let mut file = self.create_file(&path, 0o644)?;
        file.write_all(bytes).map_err(|e| BuildError::io(format!("cannot write {name} to the build folder"), e))
    }

    /// Puts the file `from` (of the build cache, read-only) into `sub/` under its name: a
    /// hard link when both are on one file system, else a copy.
    pub fn link_in(&self, sub: &str, from: &Path) -> Result<(), BuildError> {
        let name = from.file_name().unwrap_or_default();
        let to = self.host().join(sub).join(name);
        if fs::hard_link(from, &to).is_ok() {
            return Ok(());
        }
        let mut source = File::open(from).map_err(|e| BuildError::io(format!("cannot read {}", from.display()), e))?;
        let mut target = self.create_file(&to, 0o444)?;
        copy_reading(&mut source, &mut target).map_err(|e| e.into_build_error(from, "copying a precompiled header"))?;
        Ok(())
    }

    /// Puts the executable `program` into `bin/` under `name`: a hard link when anyone may
    /// read and run it and it is on the same file system (nothing to copy; the link gives
    /// the build's account no right the file's mode did not), else a copy the build's
    /// account owns.
    pub fn add_executable(&self, program: &Path, name: &str) -> Result<(), BuildError> {
        let path = self.host().join(BIN).join(name);
        let open_to_all = fs::metadata(program).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o005 == 0o005);
        if open_to_all && fs::hard_link(program, &path).is_ok() {
            return Ok(());
        }
        let mut source =
            File::open(program).map_err(|e| BuildError::io(format!("cannot read {}", program.display()), e))?;
        let mut target = self.create_file(&path, 0o755)?;
        copy_reading(&mut source, &mut target).map_err(|e| e.into_build_error(program, "copying openplc-rt"))?;
        Ok(())
    }

    /// Puts the built `out/<name>` at `dest`: copied beside it under a unique name, synced,
    /// renamed over it. On failure nothing is left beside `dest`.
    pub fn place(&self, name: &str, dest: &Path) -> Result<(), BuildError> {
        let dest_dir = dest.parent().unwrap_or(Path::new("."));
        let partial = partial_path(dest_dir, dest);
        let what = || format!("writing the program library {}", dest.display());
        let result = (|| -> Result<(), BuildError> {
            let mut source = File::open(self.host().join(OUT).join(name))
                .map_err(|e| BuildError::io("cannot read the built library", e))?;
            let mut target = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&partial)
                .map_err(|e| BuildError::io(what(), e))?;
            copy_reading(&mut source, &mut target).map_err(|e| e.into_build_error(Path::new(name), &what()))?;
            target.sync_all().map_err(|e| BuildError::io(what(), e))?;
            fs::rename(&partial, dest)
                .map_err(|e| BuildError::io(format!("cannot move the library to {}", dest.display()), e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        result
    }

    fn make_dir(&self, path: &Path) -> Result<(), BuildError> {
        fs::create_dir(path).map_err(|e| BuildError::io(format!("cannot create {}", path.display()), e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .map_err(|e| BuildError::io(format!("cannot set the mode of {}", path.display()), e))?;
        self.own(path)
    }

    fn create_file(&self, path: &Path, mode: u32) -> Result<File, BuildError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| BuildError::io(format!("cannot create {}", path.display()), e))?;
        self.own(path)?;
        Ok(file)
    }

    /// Hands `path` to the build's account.
    fn own(&self, path: &Path) -> Result<(), BuildError> {
        match self.owner {
            Some(id) => std::os::unix::fs::lchown(path, Some(id.uid), Some(id.gid))
                .map_err(|e| BuildError::io(format!("cannot give {} to uid {}", path.display(), id.uid), e)),
            None => Ok(()),
        }
    }
}

struct Budget {
    bytes: u64,
    entries: usize,
}

/// A copy that failed reading or writing: reading is the source's fault, writing may be the
/// storage's.
enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

impl CopyError {
    fn into_build_error(self, source: &Path, what: &str) -> BuildError {
        match self {
            CopyError::Read(e) => BuildError::BundleUnreadable { path: source.to_path_buf(), source: e },
            CopyError::Write(e) => BuildError::io(what, e),
        }
    }
}

fn copy_reading(from: &mut impl Read, to: &mut impl Write) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
    to.flush().map_err(CopyError::Write)?;
    Ok(total)
}

/// A unique name beside `dest`, so that the final rename is atomic.
fn partial_path(dir: &Path, dest: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "program.so".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.partial-{}-{n}", std::process::id()))
}

/// Removes the build folders in `parent` that no build holds (see the module's comment).
/// Best effort: a folder that cannot be read or removed is left as it is.
fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        // Not followed if it is a link: only a real folder is ever removed.
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        let old = meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > STALE_AFTER);
        if !meta.is_dir() || !old {
            continue;
        }
        let Ok(dir) = File::open(&path) else { continue };
        if dir.try_lock().is_ok() {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_copied_without_following_links() {
        let bundle = tempfile::tempdir().expect("temp");
        fs::create_dir_all(bundle.path().join("lib/C")).expect("mkdir");
        fs::write(bundle.path().join("Config0.c"), "int a;").expect("write");
        fs::write(bundle.path().join("lib/C/x.h"), "#define X 1").expect("write");
        let folder = BuildFolder::create(None, None).expect("folder");
        folder.copy_bundle(bundle.path()).expect("copy");
        assert_eq!(fs::read(folder.host().join("src/lib/C/x.h")).expect("read"), b"#define X 1");
        for sub in [SRC, OUT, BIN, TMP, LOG, PCH] {
            assert!(folder.host().join(sub).is_dir(), "{sub}");
        }

        std::os::unix::fs::symlink("/etc/hostname", bundle.path().join("lib/leak.h")).expect("symlink");
        let folder = BuildFolder::create(None, None).expect("folder");
        let err = folder.copy_bundle(bundle.path()).expect_err("a link is refused");
        assert!(err.to_string().contains("lib/leak.h is not a regular file"), "{err}");
    }

    #[test]
    fn a_failed_placement_leaves_nothing_beside_the_destination() {
        let folder = BuildFolder::create(None, None).expect("folder");
        let dest_dir = tempfile::tempdir().expect("temp");
        let dest = dest_dir.path().join("program.so");
        assert!(folder.place("program.so", &dest).is_err(), "nothing was built");
        assert_eq!(fs::read_dir(dest_dir.path()).expect("list").count(), 0);

        fs::write(folder.host().join("out/program.so"), b"\x7fELF...").expect("write");
        folder.place("program.so", &dest).expect("placed");
        assert_eq!(fs::read(&dest).expect("read"), b"\x7fELF...");
        assert_eq!(fs::read_dir(dest_dir.path()).expect("list").count(), 1, "only the library");
    }

    /// Left by a killed build: old and unlocked, removed. Unlocked but young (its build may
    /// not have locked it yet), or old but locked (its build runs): kept.
    #[test]
    fn only_the_folders_of_builds_that_died_are_removed() {
        let parent = tempfile::tempdir().expect("temp");
        let made_long_ago = |path: &Path| {
            let long_ago = std::time::SystemTime::now() - 2 * STALE_AFTER;
            File::open(path).expect("open").set_modified(long_ago).expect("set the time");
        };
        let dead = parent.path().join(format!("{PREFIX}dead"));
        fs::create_dir_all(dead.join("out")).expect("mkdir");
        fs::write(dead.join("out/program.so"), b"left behind").expect("write");
        made_long_ago(&dead);
        let young = parent.path().join(format!("{PREFIX}young"));
        fs::create_dir(&young).expect("mkdir");
        let other = parent.path().join("someone-else");
        fs::create_dir(&other).expect("mkdir");
        made_long_ago(&other);
        let running = BuildFolder::create(Some(parent.path()), None).expect("folder");
        made_long_ago(running.host());

        remove_stale(parent.path());
        assert!(!dead.exists(), "the dead build's folder is removed");
        assert!(young.exists() && other.exists(), "a young folder and others' are kept");
        assert!(running.host().join(SRC).is_dir(), "the running build's folder is kept");
        let path = running.host().to_path_buf();
        drop(running);
        assert!(!path.exists(), "a build removes its own folder");
    }
}
