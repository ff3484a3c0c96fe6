//! PostgreSQL's archive status files, `pg_wal/archive_status/<name>.ready` (and `.done`): read
//! here, never written, renamed or removed (that is PostgreSQL's archiver's job).

use std::path::Path;

use crate::wal::WalFileName;

/// The folder of the status files inside `pg_wal`.
pub const ARCHIVE_STATUS: &str = "archive_status";

/// The files PostgreSQL has marked ready in `pg_wal`, in the order its archiver takes them
/// (history files first, then by name).
pub fn ready_files(pg_wal: &Path) -> Vec<WalFileName> {
    let Ok(entries) = std::fs::read_dir(pg_wal.join(ARCHIVE_STATUS)) else { return Vec::new() };
    let mut names: Vec<WalFileName> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".ready")?.parse().ok())
        .collect();
    names.sort_by_key(|n| (!matches!(n, WalFileName::History(_)), n.to_string()));
    names
}

/// How many files PostgreSQL has marked ready in `pg_wal`: one directory read, no parsing or
/// sorting (every wal-push call counts them for the host's stats).
pub fn ready_count(pg_wal: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(pg_wal.join(ARCHIVE_STATUS)) else { return 0 };
    entries.flatten().filter(|e| e.file_name().as_encoded_bytes().ends_with(b".ready")).count() as u64
}

/// Whether PostgreSQL has marked `name` ready for archiving (and not yet archived).
pub fn is_ready(pg_wal: &Path, name: &str) -> bool {
    pg_wal.join(ARCHIVE_STATUS).join(format!("{name}.ready")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lists_the_ready_files_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ready_count(dir.path()), 0, "no archive_status yet");
        let status = dir.path().join(ARCHIVE_STATUS);
        std::fs::create_dir(&status).unwrap();
        for f in [
            "000000010000000000000002.ready",
            "000000010000000000000001.ready",
            "00000002.history.ready",
            "000000010000000000000000.done",
        ] {
            std::fs::write(status.join(f), b"").unwrap();
        }
        assert_eq!(ready_count(dir.path()), 3);
        let names: Vec<String> = ready_files(dir.path()).iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["00000002.history", "000000010000000000000001", "000000010000000000000002"]);
        assert!(is_ready(dir.path(), "000000010000000000000001"));
        assert!(!is_ready(dir.path(), "000000010000000000000000"));
    }
}
