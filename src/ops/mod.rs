//! The operations commands, which read (and, for retention, change) the repository as a whole
//! rather than one WAL file or one backup: [`list`], [`retention`] (`walvault delete`),
//! [`mark`] and [`verify`].

pub mod list;
pub mod mark;
pub mod retention;
pub mod verify;
