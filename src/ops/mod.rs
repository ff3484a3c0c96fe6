//! The operations commands, which read (and, for retention, change) the repository as a whole
//! rather than one WAL file or one backup: [`list`].

pub mod list;
