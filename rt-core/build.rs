// Compiles the crash guard: the one piece of C in rt-core, because sigsetjmp/siglongjmp
// must not cross Rust frames, and because the interposers of exit/abort/raise must be C
// functions of the executable itself.
fn main() {
    println!("cargo:rerun-if-changed=src/guard.c");
    println!("cargo:rerun-if-changed=../shared-abi/include/openplc_abi.h");
    cc::Build::new()
        .file("src/guard.c")
        .include("../shared-abi/include")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .flag_if_supported("-fno-builtin")
        .warnings_into_errors(true)
        .compile("oplc_guard");
    // The executable's own definitions of these win over libc's for every library it
    // dlopens (the executable comes first in the lookup scope), but only when they are in
    // its dynamic symbol table. For openplc-rt and rt-core's tests (which load programs
    // in-process); a library target ignores link arguments.
    for symbol in ["exit", "_exit", "_Exit", "quick_exit", "abort", "raise", "pthread_exit"] {
        println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol={symbol}");
    }
}
