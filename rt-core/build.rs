// Compiles the crash guard: the one piece of C in rt-core, because sigsetjmp/siglongjmp
// must not cross Rust frames.
fn main() {
    println!("cargo:rerun-if-changed=src/guard.c");
    println!("cargo:rerun-if-changed=../shared-abi/include/openplc_abi.h");
    cc::Build::new()
        .file("src/guard.c")
        .include("../shared-abi/include")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .warnings_into_errors(true)
        .compile("oplc_guard");
}
