//! `wal-push`: PostgreSQL's archive_command (`wal-push %p`).
fn main() -> std::process::ExitCode {
    walvault::cli::wal_push_main()
}
