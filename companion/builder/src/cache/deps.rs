//! What a compiled unit depends on: the compiler's own dependency file (`-MD`), read as what
//! it is, text a compiler wrote about an upload. Every file named must be in the build folder
//! or in the toolchain's system directories, or the unit is not cached at all.

use super::key::{Digest, Stamp, file_digest};
use crate::sandbox::SYSTEM_ROOTS;
use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Largest dependency file read.
const MAX_DEPFILE_BYTES: u64 = 4 << 20;

/// A file a unit was compiled from, as the cache records it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum DepPath {
    /// In the build folder, relative to it (`src/lib/iec_std_lib.h`): the same in every build.
    Folder(String),
    /// A system header, as the compiler named it (`/usr/include/stdio.h`).
    System(String),
}

impl DepPath {
    /// `f:<relative>` or `s:<absolute>`.
    pub fn encode(&self) -> String {
        match self {
            DepPath::Folder(p) => format!("f:{p}"),
            DepPath::System(p) => format!("s:{p}"),
        }
    }

    pub fn decode(text: &str) -> Option<DepPath> {
        match text.split_at_checked(2)? {
            ("f:", p) if !p.is_empty() => Some(DepPath::Folder(p.to_string())),
            ("s:", p) if p.starts_with('/') => Some(DepPath::System(p.to_string())),
            _ => None,
        }
    }
}

/// The files named by a make-style dependency file (`object: source header \ ...`), in
/// order, the object left out. `None` when it is not one.
pub(crate) fn parse_depfile(text: &[u8]) -> Option<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStringExt;
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut word = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        match c {
            b'\\' if text.get(i + 1) == Some(&b'\n') => i += 1,
            b'\\' if text.get(i + 1) == Some(&b'\r') && text.get(i + 2) == Some(&b'\n') => i += 2,
            b'\\' if matches!(text.get(i + 1), Some(b' ') | Some(b'#') | Some(b'\\')) => {
                word.push(text[i + 1]);
                i += 1;
            }
            b'$' if text.get(i + 1) == Some(&b'$') => {
                word.push(b'$');
                i += 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            0 => return None,
            _ => word.push(c),
        }
        i += 1;
    }
    if !word.is_empty() {
        words.push(word);
    }
    // The first word is the target, ending in ':' (or followed by a lone ':').
    let mut rest = words.into_iter();
    let target = rest.next()?;
    let mut files: Vec<Vec<u8>> = rest.collect();
    if target.last() != Some(&b':') {
        if files.first().map(|w| w.as_slice()) != Some(b":") {
            return None;
        }
        files.remove(0);
    }
    if files.iter().any(|f| f.ends_with(b":")) {
        return None; // a second rule: not what -MD writes
    }
    Some(files.into_iter().map(|f| PathBuf::from(std::ffi::OsString::from_vec(f))).collect())
}

/// Reads and parses the dependency file at `path` (on the host).
pub(crate) fn read_depfile(path: &Path) -> Option<Vec<PathBuf>> {
    use std::io::Read;
    let file = fs::File::open(path).ok()?;
    let mut text = Vec::new();
    file.take(MAX_DEPFILE_BYTES + 1).read_to_end(&mut text).ok()?;
    if text.len() as u64 > MAX_DEPFILE_BYTES {
        return None;
    }
    parse_depfile(&text)
}

/// Maps the paths a compiler printed to [`DepPath`]s and digests their contents, each file
/// once per build (system headers once per process, while their stamp holds).
pub(crate) struct Deps {
    /// The build folder as the compiler sees it (`/build` in the sandbox).
    seen_root: PathBuf,
    /// The compiler's working directory, as it sees it.
    seen_cwd: PathBuf,
    /// The build folder on the host.
    host_root: PathBuf,
    memo: HashMap<DepPath, Option<Digest>>,
}

impl Deps {
    pub fn new(seen_root: PathBuf, seen_cwd: PathBuf, host_root: PathBuf) -> Deps {
        Deps { seen_root, seen_cwd, host_root, memo: HashMap::new() }
    }

    /// What `printed` is to the cache; `None` for a file that is neither in the build folder
    /// nor a system header.
    pub fn classify(&self, printed: &Path) -> Option<DepPath> {
        let absolute = if printed.is_absolute() { printed.to_path_buf() } else { self.seen_cwd.join(printed) };
        let normal = normalize(&absolute)?;
        if let Ok(rel) = normal.strip_prefix(&self.seen_root) {
            let rel = rel.to_str()?;
            return (!rel.is_empty()).then(|| DepPath::Folder(rel.to_string()));
        }
        // A system header: named under a system root, and really there on the host (the
        // sandbox shows the host's /usr as it is).
        let named = absolute.to_str()?;
        if !SYSTEM_ROOTS.iter().any(|root| normal.starts_with(root)) {
            return None;
        }
        let real = absolute.canonicalize().ok()?;
        SYSTEM_ROOTS.iter().any(|root| real.starts_with(root)).then(|| DepPath::System(named.to_string()))
    }

    /// The current contents' digest of `dep`; `None` when it cannot be read.
    pub fn digest(&mut self, dep: &DepPath) -> Option<Digest> {
        if let Some(known) = self.memo.get(dep) {
            return *known;
        }
        let digest = match dep {
            DepPath::Folder(rel) => {
                let rel = Path::new(rel);
                if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                    None
                } else {
                    regular_file_digest(&self.host_root.join(rel))
                }
            }
            DepPath::System(path) => system_digest(Path::new(path)),
        };
        self.memo.insert(dep.clone(), digest);
        digest
    }
}

/// `path` with `.` and `..` resolved lexically; `None` if it climbs above `/`.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(name) => out.push(name),
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The digest of a regular file, never through a symbolic link.
fn regular_file_digest(path: &Path) -> Option<Digest> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    file_digest(path).ok()
}

/// A system header's digest, remembered while its stamp is unchanged.
fn system_digest(path: &Path) -> Option<Digest> {
    static KNOWN: OnceLock<Mutex<HashMap<PathBuf, (Stamp, Digest)>>> = OnceLock::new();
    let real = path.canonicalize().ok()?;
    let meta = fs::metadata(&real).ok()?;
    if !meta.is_file() {
        return None;
    }
    let stamp = Stamp::of(&meta);
    let known = KNOWN.get_or_init(Default::default);
    if let Some((seen, digest)) = known.lock().unwrap_or_else(|p| p.into_inner()).get(&real)
        && *seen == stamp
    {
        return Some(*digest);
    }
    let digest = file_digest(&real).ok()?;
    known.lock().unwrap_or_else(|p| p.into_inner()).insert(real, (stamp, digest));
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_gcc_writes_with_md() {
        let text = b"/build/out/1.o: /build/src/Res0.c /usr/include/stdc-predef.h \\\n /build/src/lib/iec_std_lib.h /build/src/my\\ file.h \\\n /build/src/a$$b.h\n";
        let files = parse_depfile(text).expect("a dependency file");
        let names: Vec<_> = files.iter().map(|p| p.to_str().expect("utf-8")).collect();
        assert_eq!(
            names,
            [
                "/build/src/Res0.c",
                "/usr/include/stdc-predef.h",
                "/build/src/lib/iec_std_lib.h",
                "/build/src/my file.h",
                "/build/src/a$b.h"
            ]
        );
        assert_eq!(parse_depfile(b"no rule here"), None);
        assert_eq!(parse_depfile(b"a.o: x.h\nb.o: y.h\n"), None, "one rule only");
        assert_eq!(parse_depfile(b"a.o: x\0.h\n"), None);
        assert_eq!(parse_depfile(b"a.o :  x.h\n").expect("spaced colon").len(), 1);
    }

    #[test]
    fn only_the_build_folder_and_system_headers_count() {
        let deps = Deps::new("/build".into(), "/build/out".into(), "/tmp/host".into());
        assert_eq!(deps.classify(Path::new("/build/src/POUS.h")), Some(DepPath::Folder("src/POUS.h".into())));
        assert_eq!(deps.classify(Path::new("/build/src/lib/../POUS.h")), Some(DepPath::Folder("src/POUS.h".into())));
        assert_eq!(deps.classify(Path::new("../src/x.h")), Some(DepPath::Folder("src/x.h".into())));
        assert_eq!(deps.classify(Path::new("/build/../etc/passwd")), None);
        assert_eq!(deps.classify(Path::new("/etc/ld.so.cache")), None);
        assert_eq!(deps.classify(Path::new("/dev/null")), None);
        assert_eq!(deps.classify(Path::new("/usr/../dev/null")), None);
        assert_eq!(deps.classify(Path::new("/proc/self/status")), None);
        let stdc = deps.classify(Path::new("/usr/include/stdc-predef.h"));
        assert_eq!(stdc, Some(DepPath::System("/usr/include/stdc-predef.h".into())));
        assert_eq!(deps.classify(Path::new("/usr/include/surely-not-a-header.h")), None);

        for dep in [DepPath::Folder("src/a b.h".into()), DepPath::System("/usr/include/x.h".into())] {
            assert_eq!(DepPath::decode(&dep.encode()), Some(dep));
        }
        assert_eq!(DepPath::decode("s:relative"), None);
        assert_eq!(DepPath::decode("x:/usr"), None);
    }

    #[test]
    fn folder_files_are_read_without_following_links() {
        let host = tempfile::tempdir().expect("temp");
        fs::create_dir_all(host.path().join("src")).expect("mkdir");
        fs::write(host.path().join("src/a.h"), "int a;").expect("write");
        std::os::unix::fs::symlink("/etc/hostname", host.path().join("src/l.h")).expect("link");
        let mut deps = Deps::new("/build".into(), "/build/out".into(), host.path().to_path_buf());
        assert_eq!(deps.digest(&DepPath::Folder("src/a.h".into())), Some(Digest::of(b"int a;")));
        assert_eq!(deps.digest(&DepPath::Folder("src/l.h".into())), None);
        assert_eq!(deps.digest(&DepPath::Folder("src/../../x".into())), None);
        assert_eq!(deps.digest(&DepPath::Folder("src/missing.h".into())), None);
    }
}
