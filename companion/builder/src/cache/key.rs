//! Content addresses: SHA-256 digests of everything that makes a compiled unit what it is,
//! and the compiler's identity.
//!
//! A strong hash because a key is made of an upload's bytes: a key that two different inputs
//! could share on purpose would let one upload be served another's object.

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Digest(pub [u8; 32]);

impl Digest {
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }

    pub fn from_hex(text: &str) -> Option<Digest> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let nibble = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            };
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Digest(out))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex()[..16])
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Builds a key from fields; each field is length-prefixed, so that no two different
/// sequences of fields hash the same bytes.
pub(crate) struct KeyHasher(Sha256);

impl KeyHasher {
    /// A key of the kind `domain` (keys of different kinds never meet).
    pub fn new(domain: &str) -> KeyHasher {
        let mut h = KeyHasher(Sha256::new());
        h.field(domain.as_bytes());
        h
    }

    pub fn field(&mut self, bytes: &[u8]) -> &mut KeyHasher {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn digest(&mut self, d: &Digest) -> &mut KeyHasher {
        self.field(&d.0)
    }

    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

/// The digest of a file's contents.
pub(crate) fn file_digest(path: &Path) -> io::Result<Digest> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Digest(hasher.finalize().into()))
}

/// What changes when a file is replaced or rewritten: device, inode, size, modification
/// and change times (the change time cannot be set back by anyone but root).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        [
            self.dev,
            self.ino,
            self.size,
            self.mtime.0 as u64,
            self.mtime.1 as u64,
            self.ctime.0 as u64,
            self.ctime.1 as u64,
        ]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
    }
}

/// The identity of the compiler `program` (as found on PATH): its version and target as it
/// reports them, and the files of the driver and of the compilers and assembler it runs
/// (path and stamp: a package upgrade replaces them). Asked once per process and driver;
/// again when the driver's file changed.
pub(crate) fn compiler_identity(program: &str) -> io::Result<Digest> {
    static KNOWN: OnceLock<Mutex<HashMap<String, (Stamp, Digest)>>> = OnceLock::new();
    let driver = crate::sandbox::find_program(program.as_ref())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{program}: not found")))?
        .canonicalize()?;
    let stamp = Stamp::of(&fs::metadata(&driver)?);
    let known = KNOWN.get_or_init(Default::default);
    if let Some((seen, digest)) = known.lock().unwrap_or_else(|p| p.into_inner()).get(program)
        && *seen == stamp
    {
        return Ok(*digest);
    }
    let mut key = KeyHasher::new("compiler");
    key.field(driver.as_os_str().as_encoded_bytes()).field(&stamp.bytes());
    key.field(&ask(&driver, &["-dumpfullversion", "-dumpmachine"])?);
    for part in ["cc1", "cc1plus", "as", "collect2"] {
        let said = ask(&driver, &[&format!("-print-prog-name={part}")])?;
        let path = PathBuf::from(String::from_utf8_lossy(&said).trim());
        key.field(path.as_os_str().as_encoded_bytes());
        if let Ok(meta) = fs::metadata(&path) {
            key.field(&Stamp::of(&meta).bytes());
        }
    }
    let digest = key.finish();
    known.lock().unwrap_or_else(|p| p.into_inner()).insert(program.to_string(), (stamp, digest));
    Ok(digest)
}

/// What `driver args` prints, run with an empty environment but PATH.
fn ask(driver: &Path, args: &[&str]) -> io::Result<Vec<u8>> {
    let mut cmd = Command::new(driver);
    cmd.args(args).env_clear().env("LC_ALL", "C").stdin(Stdio::null()).stderr(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("{} {}: {}", driver.display(), args.join(" "), out.status)));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex_and_fields_do_not_run_together() {
        let d = Digest::of(b"abc");
        assert_eq!(d.hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(Digest::from_hex(&d.hex()), Some(d));
        assert_eq!(Digest::from_hex("BA78"), None);
        assert_eq!(Digest::from_hex(&"g".repeat(64)), None);

        let mut a = KeyHasher::new("k");
        a.field(b"ab").field(b"c");
        let mut b = KeyHasher::new("k");
        b.field(b"a").field(b"bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn the_compiler_identity_is_stable_and_names_the_compiler() {
        let cc = compiler_identity("cc").expect("cc");
        assert_eq!(compiler_identity("cc").expect("cc again"), cc);
        assert_ne!(compiler_identity("c++").expect("c++"), cc, "another driver, another identity");
        assert!(compiler_identity("surely-no-such-compiler").is_err());
    }
}
