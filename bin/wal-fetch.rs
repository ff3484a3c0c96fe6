//! `wal-fetch`: PostgreSQL's restore_command (`wal-fetch %f %p`).
fn main() -> std::process::ExitCode {
    walvault::cli::wal_fetch_main()
}
