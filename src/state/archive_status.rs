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

/// Whether PostgreSQL has marked `name` ready for archiving (and not yet archived).
pub fn is_ready(pg_wal: &Path, name: &str) -> bool {
    pg_wal.join(ARCHIVE_STATUS).join(format!("{name}.ready")).exists()
}
