//! `walvault`: configuration, keys, and the WAL commands under one name.
fn main() -> std::process::ExitCode {
    walvault::cli::walvault_main()
}
