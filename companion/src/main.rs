fn main() -> std::process::ExitCode {
    openplc_companion::main_entry()
}
