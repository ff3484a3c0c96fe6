//! The operations commands, which read (and, for retention, change) the repository as a whole
//! rather than one WAL file or one backup: [`list`], [`retention`] (`walvault delete`),
//! [`mark`], [`verify`], [`status`] (and its metrics) and [`check`].

pub mod check;
pub mod list;
pub mod mark;
pub mod retention;
pub mod status;
pub mod verify;
