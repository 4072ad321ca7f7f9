//! The build cache: compiled units (objects) and precompiled headers, addressed by their
//! content, in a directory of the runtime's data that only the runtime can read (it holds
//! compiled code of uploads), bounded in size, kept across restarts.
//!
//! ```text
//! manifests/<key>.json   for a unit's key (its bytes, flags, compiler, adapter version, ...):
//!                        the header sets it was compiled with, newest first, each with the
//!                        digest of every header and the entry it produced
//! objects/<entry>.o      an object: "OPLCOBJ1", SHA-256 of the object, the object
//! pch/<entry>/           a precompiled header: the files the compiler reads, meta.json
//!                        with each file's SHA-256
//! tmp/                   entries being written (renamed into place when complete)
//! ```
//!
//! A key is looked up by reading its manifest and checking, variant by variant, that every
//! header it names still has the recorded digest (the compiler's own dependency output
//! said which headers those are); the entry is then `SHA-256(key, headers and digests)`, so
//! a manifest cannot point a key at another key's object. An object or precompiled header
//! whose bytes do not match their recorded digest is removed and rebuilt, never served. An
//! entry is written under `tmp/` and renamed into place, so a reader sees it whole or not
//! at all, whatever a concurrent build or a crash does. Every hit refreshes the entry's
//! modification time, and the oldest entries go first when the cache is over its bound.

mod deps;
mod key;

pub(crate) use deps::{DepPath, Deps, read_depfile};
pub(crate) use key::{Digest, KeyHasher, compiler_identity, file_digest};

use key::Stamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Where the cache lives and how large it may grow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// The cache directory (created, mode 0700).
    pub dir: PathBuf,
    /// The bound: the oldest entries are removed when the cache holds more.
    pub max_bytes: u64,
}

/// Header sets remembered per key.
const MAX_VARIANTS: usize = 8;
const OBJECT_MAGIC: &[u8; 8] = b"OPLCOBJ1";
/// Largest object cached.
const MAX_OBJECT_BYTES: u64 = 64 << 20;
/// Files under `tmp/` older than this were left by a crash.
const STALE_TMP: Duration = Duration::from_secs(3600);
const PCH_META: &str = "meta.json";

/// An entry found for a key.
pub(crate) struct Found {
    pub entry: Digest,
    /// The headers it was made from, with the digests they have now.
    pub deps: Vec<(DepPath, Digest)>,
}

/// Why an entry was not served.
#[derive(Debug)]
pub(crate) enum Miss {
    /// Nothing cached for this key and these headers.
    Absent,
    /// The entry was damaged; it was removed.
    Corrupt(String),
}

#[derive(Serialize, Deserialize, Default)]
struct Manifest {
    variants: Vec<Variant>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq)]
struct Variant {
    /// `[encoded DepPath, hex digest]`, sorted.
    deps: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct PchMeta {
    /// `[file name, hex digest]`.
    files: Vec<(String, String)>,
}

/// The cache directory, opened.
pub(crate) struct Cache {
    root: PathBuf,
    max_bytes: u64,
}

impl Cache {
    /// Opens (creating) the cache at `settings.dir`, readable by this process's user only,
    /// and removes what a crash left half-written.
    pub fn open(settings: &CacheSettings) -> io::Result<Cache> {
        let root = settings.dir.clone();
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&root)?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700))?;
        for sub in ["manifests", "objects", "pch", "tmp"] {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(root.join(sub))?;
        }
        let cache = Cache { root, max_bytes: settings.max_bytes };
        cache.sweep_tmp();
        Ok(cache)
    }

    /// The entry `key` produced with the headers the dependency resolver sees now, and those
    /// headers with their digests.
    pub fn find(&self, key: &Digest, deps: &mut Deps) -> Result<Found, Miss> {
        let path = self.manifest_path(key);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(_) => return Err(Miss::Absent),
        };
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&text) else {
            let _ = fs::remove_file(&path);
            return Err(Miss::Corrupt("its manifest could not be read".into()));
        };
        'variants: for variant in &manifest.variants {
            let mut recorded = Vec::with_capacity(variant.deps.len());
            for (encoded, hex) in &variant.deps {
                let (Some(dep), Some(digest)) = (DepPath::decode(encoded), Digest::from_hex(hex)) else {
                    let _ = fs::remove_file(&path);
                    return Err(Miss::Corrupt("its manifest names an unreadable header".into()));
                };
                if deps.digest(&dep) != Some(digest) {
                    continue 'variants;
                }
                recorded.push((dep, digest));
            }
            touch(&path);
            return Ok(Found { entry: entry_digest(key, &recorded), deps: recorded });
        }
        Err(Miss::Absent)
    }

    /// The object stored as `entry`, checked against its digest. A damaged one is removed.
    pub fn read_object(&self, entry: &Digest) -> Result<Vec<u8>, Miss> {
        let path = self.object_path(entry);
        let mut bytes = Vec::new();
        match File::open(&path).and_then(|f| f.take(MAX_OBJECT_BYTES + 64).read_to_end(&mut bytes)) {
            Ok(_) => {}
            Err(_) => return Err(Miss::Absent),
        }
        let header = OBJECT_MAGIC.len() + 32;
        let intact = bytes.len() >= header
            && &bytes[..OBJECT_MAGIC.len()] == OBJECT_MAGIC
            && Digest::of(&bytes[header..]).0[..] == bytes[OBJECT_MAGIC.len()..header];
        if !intact {
            let _ = fs::remove_file(&path);
            return Err(Miss::Corrupt("its object does not match its checksum".into()));
        }
        touch(&path);
        bytes.drain(..header);
        Ok(bytes)
    }

    /// Records that `key` with `deps` produced `object`; returns the entry.
    pub fn store_object(&self, key: &Digest, deps: Vec<(DepPath, Digest)>, object: &[u8]) -> io::Result<Digest> {
        if object.len() as u64 > MAX_OBJECT_BYTES {
            return Err(io::Error::other("object too large to cache"));
        }
        let entry = entry_digest(key, &deps);
        let mut bytes = Vec::with_capacity(object.len() + 40);
        bytes.extend_from_slice(OBJECT_MAGIC);
        bytes.extend_from_slice(&Digest::of(object).0);
        bytes.extend_from_slice(object);
        self.write_atomically(&self.object_path(&entry), &bytes, 0o600)?;
        self.add_variant(key, deps)?;
        Ok(entry)
    }

    /// The precompiled header stored as `entry`: its directory, its files checked against
    /// their digests (once per process while their stamps hold). A damaged one is removed.
    pub fn pch(&self, entry: &Digest) -> Result<PathBuf, Miss> {
        static VERIFIED: OnceLock<Mutex<HashMap<PathBuf, Vec<Stamp>>>> = OnceLock::new();
        let dir = self.root.join("pch").join(entry.hex());
        let Ok(text) = fs::read(dir.join(PCH_META)) else { return Err(Miss::Absent) };
        let damaged = |why: &str| {
            let _ = fs::remove_dir_all(&dir);
            Err(Miss::Corrupt(why.to_string()))
        };
        let Ok(meta) = serde_json::from_slice::<PchMeta>(&text) else {
            return damaged("its description cannot be read");
        };
        let mut stamps = Vec::new();
        for (name, _) in &meta.files {
            if !is_plain_name(name) {
                return damaged("its description names a file outside it");
            }
            match fs::symlink_metadata(dir.join(name)) {
                Ok(m) if m.is_file() => stamps.push(Stamp::of(&m)),
                _ => return damaged("a file of it is missing"),
            }
        }
        let verified = VERIFIED.get_or_init(Default::default);
        let known = verified.lock().unwrap_or_else(|p| p.into_inner()).get(&dir) == Some(&stamps);
        if !known {
            for (name, hex) in &meta.files {
                if file_digest(&dir.join(name)).ok().map(|d| d.hex()).as_deref() != Some(hex.as_str()) {
                    return damaged("a file of it does not match its checksum");
                }
            }
            verified.lock().unwrap_or_else(|p| p.into_inner()).insert(dir.clone(), stamps);
        }
        touch(&dir);
        Ok(dir)
    }

    /// Stores the files of `from` (a flat directory) as the precompiled header `key` with
    /// `deps`, readable by anyone who can reach them (builds link them into their folder;
    /// the cache directory itself keeps everyone else out). Returns the entry.
    pub fn store_pch(&self, key: &Digest, deps: Vec<(DepPath, Digest)>, from: &Path) -> io::Result<Digest> {
        let entry = entry_digest(key, &deps);
        let staging = self.tmp_path("pch");
        fs::DirBuilder::new().mode(0o755).create(&staging)?;
        let result = (|| -> io::Result<()> {
            let mut files = Vec::new();
            for item in fs::read_dir(from)? {
                let item = item?;
                let name = item.file_name().to_string_lossy().into_owned();
                if !item.file_type()?.is_file() || !is_plain_name(&name) {
                    continue;
                }
                let target = staging.join(&name);
                copy_file(&item.path(), &target, 0o444)?;
                files.push((name, file_digest(&target)?.hex()));
            }
            let meta = serde_json::to_vec(&PchMeta { files }).map_err(io::Error::other)?;
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o444).open(staging.join(PCH_META))?;
            file.write_all(&meta)?;
            fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))?;
            match fs::rename(&staging, self.root.join("pch").join(entry.hex())) {
                // Another build stored the same entry first: theirs is as good.
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) || e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
                other => other,
            }
        })();
        if result.is_err() || staging.exists() {
            let _ = fs::remove_dir_all(&staging);
        }
        result?;
        self.add_variant(key, deps)?;
        Ok(entry)
    }

    /// Removes the least recently used entries until the cache holds at most its bound;
    /// returns how many entries and bytes went.
    pub fn evict(&self) -> (usize, u64) {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        for sub in ["manifests", "objects", "pch"] {
            let Ok(list) = fs::read_dir(self.root.join(sub)) else { continue };
            for item in list.flatten() {
                let Ok(meta) = item.metadata() else { continue };
                let size = if meta.is_dir() { dir_bytes(&item.path()) } else { meta.len() };
                entries.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), size, item.path()));
            }
        }
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort_by_key(|e| e.0);
        let (mut count, mut freed) = (0, 0);
        for (_, size, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            if removed.is_ok() {
                total = total.saturating_sub(size);
                count += 1;
                freed += size;
            }
        }
        (count, freed)
    }

    fn add_variant(&self, key: &Digest, mut deps: Vec<(DepPath, Digest)>) -> io::Result<()> {
        deps.sort();
        let variant = Variant { deps: deps.iter().map(|(d, h)| (d.encode(), h.hex())).collect() };
        let path = self.manifest_path(key);
        let mut manifest: Manifest =
            fs::read(&path).ok().and_then(|t| serde_json::from_slice(&t).ok()).unwrap_or_default();
        manifest.variants.retain(|v| v != &variant);
        manifest.variants.insert(0, variant);
        manifest.variants.truncate(MAX_VARIANTS);
        let text = serde_json::to_vec(&manifest).map_err(io::Error::other)?;
        self.write_atomically(&path, &text, 0o600)
    }

    fn manifest_path(&self, key: &Digest) -> PathBuf {
        self.root.join("manifests").join(format!("{}.json", key.hex()))
    }

    fn object_path(&self, entry: &Digest) -> PathBuf {
        self.root.join("objects").join(format!("{}.o", entry.hex()))
    }

    fn tmp_path(&self, what: &str) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Writes `bytes` to `path` by way of a file under `tmp/` renamed over it.
    fn write_atomically(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        let tmp = self.tmp_path("entry");
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
            file.write_all(bytes)?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Removes what a crash left under `tmp/` (only old files: another build of this
    /// process may be writing the new ones).
    fn sweep_tmp(&self) {
        let Ok(list) = fs::read_dir(self.root.join("tmp")) else { return };
        let now = SystemTime::now();
        for item in list.flatten() {
            let old = item
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() > STALE_TMP)
                .unwrap_or(true);
            if old {
                let path = item.path();
                let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            }
        }
    }
}

/// The entry a key produced with these headers.
fn entry_digest(key: &Digest, deps: &[(DepPath, Digest)]) -> Digest {
    let mut sorted: Vec<&(DepPath, Digest)> = deps.iter().collect();
    sorted.sort();
    let mut h = KeyHasher::new("entry");
    h.digest(key);
    for (dep, digest) in sorted {
        h.field(dep.encode().as_bytes()).digest(digest);
    }
    h.finish()
}

/// Marks an entry as just used.
fn touch(path: &Path) {
    if let Ok(file) = File::open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && name != PCH_META
}

/// The bytes of the files directly in `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir).map(|list| list.flatten().filter_map(|i| i.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
}

/// Copies `from` to a new file `to` with `mode`.
pub(crate) fn copy_file(from: &Path, to: &Path, mode: u32) -> io::Result<()> {
    let mut source = File::open(from)?;
    let mut target = OpenOptions::new().write(true).create_new(true).mode(mode).open(to)?;
    io::copy(&mut source, &mut target)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_bytes: u64) -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().expect("temp");
        let cache = Cache::open(&CacheSettings { dir: dir.path().join("cache"), max_bytes }).expect("open");
        (dir, cache)
    }

    #[test]
    fn an_object_is_found_for_the_same_headers_only() {
        let (dir, cache) = cache(1 << 20);
        let host = dir.path().join("build");
        fs::create_dir_all(host.join("src")).expect("mkdir");
        fs::write(host.join("src/a.h"), "int a;").expect("write");
        let deps_now = || Deps::new("/build".into(), "/build/out".into(), host.clone());
        let key = Digest::of(b"unit key");
        let dep = DepPath::Folder("src/a.h".into());
        let entry =
            cache.store_object(&key, vec![(dep.clone(), Digest::of(b"int a;"))], b"\x7fELF object").expect("store");
        assert_eq!(cache.find(&key, &mut deps_now()).expect("hit").entry, entry);
        assert_eq!(cache.read_object(&entry).expect("read"), b"\x7fELF object");
        assert!(matches!(cache.find(&Digest::of(b"other key"), &mut deps_now()), Err(Miss::Absent)));

        fs::write(host.join("src/a.h"), "int b;").expect("change the header");
        assert!(matches!(cache.find(&key, &mut deps_now()), Err(Miss::Absent)), "a changed header is a miss");
        // Both header sets are remembered.
        let other = cache.store_object(&key, vec![(dep, Digest::of(b"int b;"))], b"another").expect("store");
        assert_eq!(cache.find(&key, &mut deps_now()).expect("hit").entry, other);
        fs::write(host.join("src/a.h"), "int a;").expect("change back");
        assert_eq!(cache.find(&key, &mut deps_now()).expect("hit").entry, entry);

        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("cache")), 0o700);
        assert_eq!(mode(&cache.object_path(&entry)), 0o600);
    }

    #[test]
    fn a_damaged_object_or_manifest_is_removed_not_served() {
        let (dir, cache) = cache(1 << 20);
        let mut deps = Deps::new("/build".into(), "/build/out".into(), dir.path().into());
        let key = Digest::of(b"k");
        let entry = cache.store_object(&key, vec![], b"object bytes").expect("store");
        let path = cache.object_path(&entry);
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).expect("damage");
        assert!(matches!(cache.read_object(&entry), Err(Miss::Corrupt(_))));
        assert!(!path.exists(), "removed");
        assert!(matches!(cache.read_object(&entry), Err(Miss::Absent)));

        fs::write(cache.manifest_path(&key), b"{not json").expect("damage");
        assert!(matches!(cache.find(&key, &mut deps), Err(Miss::Corrupt(_))));
        assert!(!cache.manifest_path(&key).exists());
    }

    #[test]
    fn the_least_recently_used_entries_go_first() {
        let (_dir, cache) = cache(2500);
        let mut entries = Vec::new();
        for i in 0..4u8 {
            let key = Digest::of(&[i]);
            entries.push(cache.store_object(&key, vec![], &[i; 1000]).expect("store"));
            std::thread::sleep(Duration::from_millis(5)); // distinct modification times
        }
        cache.read_object(&entries[0]).expect("the oldest, used again");
        let (count, _) = cache.evict();
        assert!(count >= 2, "{count}");
        assert!(cache.read_object(&entries[0]).is_ok(), "recently used: kept");
        assert!(cache.read_object(&entries[3]).is_ok(), "newest: kept");
        assert!(matches!(cache.read_object(&entries[1]), Err(Miss::Absent)), "least recently used: gone");
    }

    #[test]
    fn a_precompiled_header_is_checked_before_it_is_used() {
        let (dir, cache) = cache(1 << 20);
        let staged = dir.path().join("staged");
        fs::create_dir_all(&staged).expect("mkdir");
        fs::write(staged.join("x.h"), "#pragma once").expect("write");
        fs::write(staged.join("x.h.gch"), "precompiled").expect("write");
        let key = Digest::of(b"pch key");
        let entry = cache.store_pch(&key, vec![], &staged).expect("store");
        let pch = cache.pch(&entry).expect("found");
        assert_eq!(fs::read(pch.join("x.h.gch")).expect("read"), b"precompiled");
        assert_eq!(fs::metadata(pch.join("x.h.gch")).expect("meta").permissions().mode() & 0o777, 0o444);

        let gch = pch.join("x.h.gch");
        fs::set_permissions(&gch, fs::Permissions::from_mode(0o644)).expect("chmod");
        fs::write(&gch, "damaged!!!!").expect("damage");
        assert!(matches!(cache.pch(&entry), Err(Miss::Corrupt(_))));
        assert!(!pch.exists(), "removed");
    }
}
