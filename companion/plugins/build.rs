//! Compiles the C part of the host: the printf-style logging entry points plugins call.
//! Variadic functions cannot be defined in stable Rust, and the format string must be
//! expanded by the C library's vsnprintf, exactly as the plugin's author expects.

fn main() {
    println!("cargo:rerun-if-changed=src/c/log_shim.c");
    cc::Build::new().file("src/c/log_shim.c").warnings(true).extra_warnings(true).compile("oplc_plugin_log_shim");
}
