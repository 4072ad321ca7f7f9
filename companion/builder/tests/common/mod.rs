//! Helpers shared by the integration tests: the demo bundle, building it once per test
//! binary, and a loaded program library with its own image.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use libloading::{Library, Symbol};
use openplc_builder::{BuildLine, BuildOptions, BuildReport, build};
use shared_abi::image::Image;
use shared_abi::program::{LocatedInfo, PROGRAM_ENTRY_SYMBOL, ProgramAbi, ProgramEntry, VarKind};
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

pub fn demo_dir() -> PathBuf {
    repo_root().join("scripts/demo-bundle")
}

/// A fresh directory under the target directory, kept after the test for inspection until a
/// later test run removes it.
pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    static SWEPT: Once = Once::new();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    SWEPT.call_once(|| remove_dead_runs(root));
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = root.join(format!("builder-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// The hand-written STruC++-shaped fixture (tests/fixtures/strucpp-demo).
pub fn strucpp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/strucpp-demo")
}

/// The STruC++ fixture built once per test binary.
pub fn strucpp_library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let out = scratch("strucpp").join("strucpp.so");
        let (result, lines) = build_collect(&strucpp_dir(), &out, &BuildOptions::default());
        if let Err(err) = result {
            panic!("STruC++ fixture does not build: {err}\n{lines:#?}");
        }
        out
    })
}

/// Removes the scratch directories of test processes that no longer run.
fn remove_dead_runs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("builder-") else { continue };
        let pid = rest.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Copies a bundle directory (recursively) so that a test may change it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("read bundle") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Builds `dir` into `out`, collecting the output lines.
pub fn build_collect(dir: &Path, out: &Path, opts: &BuildOptions) -> (Result<BuildReport, String>, Vec<BuildLine>) {
    let mut lines = Vec::new();
    let result = build(dir, out, opts, &mut |line| lines.push(line)).map_err(|e| e.to_string());
    (result, lines)
}

/// The demo bundle built once per test binary.
pub fn demo_library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let out = scratch("demo").join("demo.so");
        let (result, lines) = build_collect(&demo_dir(), &out, &BuildOptions::default());
        if let Err(err) = result {
            panic!("demo bundle does not build: {err}\n{lines:#?}");
        }
        out
    })
}

/// A loaded program library with a zeroed image of its own.
pub struct Program {
    abi: *const ProgramAbi,
    pub image: Box<Image>,
    // Dropped last: everything above points into it.
    _lib: Library,
}

impl Program {
    /// Loads a private copy of `library`: the dynamic loader shares one instance per file, and
    /// every test wants its own program state.
    pub fn load(library: &Path) -> Program {
        let copy = scratch("load").join("program.so");
        std::fs::copy(library, &copy).expect("copy library");
        // SAFETY: loading runs the library's initialisers. The library is built from a test
        // bundle and our adapter: the MatIEC C defines none (and c_blocks_code.cpp has no
        // globals); a STruC++ library's only construct its own program objects and tables.
        let lib = unsafe { Library::new(&copy) }.expect("dlopen program");
        // SAFETY: openplc_abi.h declares the entry as `const oplc_program_abi_t *(void)`,
        // which is what ProgramEntry spells.
        let entry: Symbol<ProgramEntry> = unsafe { lib.get(PROGRAM_ENTRY_SYMBOL.as_bytes()) }.expect("entry symbol");
        // SAFETY: the entry takes nothing and returns a pointer to a static in the library.
        let abi = unsafe { entry() };
        assert!(!abi.is_null(), "oplc_program_entry returned NULL");
        Program { abi, image: bytemuck::allocation::zeroed_box(), _lib: lib }
    }

    pub fn abi(&self) -> &ProgramAbi {
        // SAFETY: abi points to a static struct of the library, which self keeps loaded.
        unsafe { &*self.abi }
    }

    pub fn generator(&self) -> String {
        // SAFETY: the adapter's generator is a NUL-terminated string literal in the library.
        unsafe { CStr::from_ptr(self.abi().generator) }.to_string_lossy().into_owned()
    }

    pub fn bind(&mut self) -> i32 {
        let bind = self.abi().bind_image.expect("bind_image");
        let image: *mut Image = &mut *self.image;
        // SAFETY: the image is boxed, so it stays at this address as long as self (and the
        // library, which keeps pointers into it) lives.
        unsafe { bind(image) }
    }

    pub fn bind_null(&self) -> i32 {
        let bind = self.abi().bind_image.expect("bind_image");
        // SAFETY: bind_image must reject a null image without dereferencing it.
        unsafe { bind(std::ptr::null_mut()) }
    }

    pub fn init(&mut self) -> i32 {
        let init = self.abi().init.expect("init");
        // SAFETY: init touches only the program's globals and the bound image, owned by self.
        unsafe { init() }
    }

    /// bind_image then init, as rt-core does.
    pub fn start(&mut self) {
        assert_eq!(self.bind(), 0, "bind_image");
        assert_eq!(self.init(), 0, "init");
    }

    /// Runs `n` ticks numbered from `from` (wrapping).
    pub fn run(&mut self, from: u64, n: u64) {
        let run_tick = self.abi().run_tick.expect("run_tick");
        for tick in (0..n).map(|k| from.wrapping_add(k)) {
            // SAFETY: the program was bound to self.image, which is alive and not borrowed.
            unsafe { run_tick(tick) };
        }
    }

    pub fn tick_period_ns(&self) -> u64 {
        // SAFETY: reads a global of the library.
        unsafe { self.abi().tick_period_ns.expect("tick_period_ns")() }
    }

    pub fn md5(&self) -> Option<String> {
        // SAFETY: program_md5 returns NULL or a NUL-terminated array in the library.
        let ptr = unsafe { self.abi().program_md5.expect("program_md5")() };
        // SAFETY: checked for NULL; the string lives as long as the library.
        (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned())
    }

    pub fn var_count(&self) -> u32 {
        // SAFETY: no arguments; returns debug.c's VAR_COUNT.
        unsafe { self.abi().var_count.expect("var_count")() }
    }

    pub fn var_size(&self, index: u32) -> u32 {
        // SAFETY: any index is allowed; out of range answers 0.
        unsafe { self.abi().var_size.expect("var_size")(index) }
    }

    pub fn var_kind(&self, index: u32) -> u32 {
        // SAFETY: any index is allowed.
        unsafe { self.abi().var_kind.expect("var_kind")(index) }
    }

    pub fn var_addr(&self, index: u32) -> *mut u8 {
        // SAFETY: any index is allowed; out of range answers NULL.
        unsafe { self.abi().var_addr.expect("var_addr")(index) }.cast()
    }

    /// A copy of a debug variable's current bytes.
    pub fn var_bytes(&self, index: u32) -> Vec<u8> {
        let size = self.var_size(index) as usize;
        let addr = self.var_addr(index);
        assert!(!addr.is_null(), "variable {index} has no address");
        // SAFETY: var_addr points to the variable's value, var_size bytes long, inside the
        // library or the image; no scan runs while this shared borrow of self exists.
        unsafe { std::slice::from_raw_parts(addr, size) }.to_vec()
    }

    pub fn force(&self, index: u32, value: &[u8]) -> i32 {
        // SAFETY: the adapter copies at most len bytes from value, which is a live slice.
        unsafe { self.abi().var_force.expect("var_force")(index, value.as_ptr().cast(), value.len() as u32) }
    }

    pub fn group_count(&self) -> Option<u32> {
        // SAFETY: no arguments.
        self.abi().group_count.map(|f| unsafe { f() })
    }

    pub fn group_len(&self, group: u32) -> Option<u32> {
        // SAFETY: any group is allowed; out of range answers 0.
        self.abi().group_len.map(|f| unsafe { f(group) })
    }

    pub fn force_null(&self, index: u32, len: u32) -> i32 {
        // SAFETY: the adapter must refuse a NULL value with a non-zero length before reading.
        unsafe { self.abi().var_force.expect("var_force")(index, std::ptr::null(), len) }
    }

    pub fn unforce(&self, index: u32) -> i32 {
        // SAFETY: any index is allowed; out of range is refused.
        unsafe { self.abi().var_unforce.expect("var_unforce")(index) }
    }

    pub fn located_count(&self) -> u32 {
        // SAFETY: no arguments.
        unsafe { self.abi().located_count.expect("located_count")() }
    }

    /// Whether the library's table has the RETAIN functions (they were appended to the ABI).
    pub fn has_retain_fields(&self) -> bool {
        ProgramAbi::has_retain(self.abi().struct_size)
    }

    /// How many RETAIN variables; `None` when the table has no retain_count (too short, or
    /// NULL).
    pub fn retain_count(&self) -> Option<u32> {
        if !self.has_retain_fields() {
            return None;
        }
        // SAFETY: struct_size covers retain_count; it takes no arguments.
        self.abi().retain_count.map(|f| unsafe { f() })
    }

    /// The debug index of RETAIN variable `i` (`u32::MAX` out of range).
    pub fn retain_var(&self, i: u32) -> u32 {
        assert!(self.has_retain_fields(), "the table has no RETAIN functions");
        // SAFETY: struct_size covers retain_var; any i is allowed.
        unsafe { self.abi().retain_var.expect("retain_var")(i) }
    }

    /// Restores RETAIN variable `i` from `value`.
    pub fn retain_set(&self, i: u32, value: &[u8]) -> i32 {
        assert!(self.has_retain_fields(), "the table has no RETAIN functions");
        // SAFETY: struct_size covers retain_set; the adapter reads at most len bytes of value,
        // a live slice, and writes only the program's own storage.
        unsafe { self.abi().retain_set.expect("retain_set")(i, value.as_ptr().cast(), value.len() as u32) }
    }

    /// The RETAIN variables' bytes, as rt-core saves them: (debug index, var_size bytes at
    /// var_addr) for each.
    pub fn retain_save(&self) -> Vec<(u32, Vec<u8>)> {
        (0..self.retain_count().unwrap_or(0))
            .map(|i| {
                let index = self.retain_var(i);
                (index, self.var_bytes(index))
            })
            .collect()
    }

    pub fn located_at(&self, i: u32) -> Result<LocatedInfo, i32> {
        let mut info = LocatedInfo::default();
        // SAFETY: info is a live LocatedInfo (oplc_located_t) the adapter fills.
        let rc = unsafe { self.abi().located_at.expect("located_at")(i, &mut info) };
        if rc == 0 { Ok(info) } else { Err(rc) }
    }
}

/// MD5 of bytes, through Python's hashlib (the tests already need Python for the script).
pub fn md5_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", "import hashlib,sys; print(hashlib.md5(sys.stdin.buffer.read()).hexdigest())"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().expect("stdin").write_all(bytes).expect("write to python3");
    let out = child.wait_with_output().expect("python3 output");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// program.st without the (*DBG:...*) trailer (and the newline before it).
pub fn program_st_body(program_st: &[u8]) -> &[u8] {
    let marker = b"\n(*DBG:";
    match program_st.windows(marker.len()).position(|w| w == marker) {
        Some(at) => &program_st[..at],
        None => program_st,
    }
}

/// The MD5 string defined in a debug.c.
pub fn debug_c_md5(debug_c: &str) -> String {
    let start = debug_c.find("char plc_program_md5[] = \"").expect("plc_program_md5") + 26;
    debug_c[start..start + 32].to_string()
}

/// An IEC STRING as the debugger sees it: length byte + 126-byte body, zero-filled.
pub fn iec_string(text: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; 127];
    bytes[0] = text.len() as u8;
    bytes[1..=text.len()].copy_from_slice(text);
    bytes
}

/// One debug variable as a demo program should show it: (index, size, kind, bytes).
pub type Expected = (u32, u32, VarKind, Vec<u8>);

/// Runs `program` through 0 and 1 scans, a few, then past the wrap of SINT (128) and
/// USINT/BYTE (256), checking every debug variable against `expected_after(scans)`.
pub fn assert_follows_the_demo_formulas(program: &mut Program, expected_after: impl Fn(u64) -> Vec<Expected>) {
    let mut done = 0;
    for n in [0u64, 1, 2, 7, 200, 301] {
        program.run(done, n - done);
        done = n;
        let expected = expected_after(n);
        assert_eq!(expected.len() as u32, program.var_count());
        for (index, size, kind, value) in expected {
            assert_eq!(program.var_size(index), size, "size of variable {index}");
            assert_eq!(VarKind::from_u32(program.var_kind(index)), kind, "kind of variable {index}");
            assert_eq!(program.var_bytes(index), value, "variable {index} after {n} scans");
        }
    }
}

/// Forcing `%QX0.0` (debug variable `dout0`, which the demo program writes every scan):
/// written through at once, held against the program, kept after release until the
/// program writes again. The same contract for both generations' adapters.
pub fn assert_forcing_an_output_drives_the_image(program: &mut Program, dout0: u32) {
    program.run(0, 1);
    assert_eq!(program.image.outputs.bool_output[0][0], 0);

    assert_eq!(program.force(dout0, &[1]), 0);
    assert_eq!(program.image.outputs.bool_output[0][0], 1, "the forced value is written through at once");
    program.run(1, 3);
    assert_eq!(program.image.outputs.bool_output[0][0], 1, "the program's writes of %IX0.0 (0) are ignored");
    assert_eq!(program.var_bytes(dout0), [1]);

    assert_eq!(program.unforce(dout0), 0);
    assert_eq!(program.image.outputs.bool_output[0][0], 1, "release keeps the value until the program writes");
    program.run(4, 1);
    assert_eq!(program.image.outputs.bool_output[0][0], 0, "released: the program writes again");
}

/// Replaces every occurrence of each `from` in `dir/file` (each must occur).
pub fn edit(dir: &Path, file: &str, replacements: &[(&str, &str)]) {
    let path = dir.join(file);
    let mut text = std::fs::read_to_string(&path).expect("read");
    for (from, to) in replacements {
        assert!(text.contains(from), "{file} has no {from:?}");
        text = text.replace(from, to);
    }
    std::fs::write(&path, text).expect("write");
}

/// Builds a copy of the bundle in `from` changed by `change`: the library and the build's
/// lines.
pub fn build_variant_of(from: &Path, tag: &str, change: impl FnOnce(&Path)) -> (PathBuf, Vec<BuildLine>) {
    let dir = scratch(tag).join("src");
    copy_dir(from, &dir);
    change(&dir);
    let out = dir.parent().expect("parent").join("program.so");
    let (result, lines) = build_collect(&dir, &out, &BuildOptions::default());
    if let Err(err) = result {
        panic!("{err}\n{lines:#?}");
    }
    (out, lines)
}

/// A library loaded, bound and initialised.
pub fn started(library: &Path) -> Program {
    let mut program = Program::load(library);
    program.start();
    program
}
