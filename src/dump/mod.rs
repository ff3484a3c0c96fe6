//! Logical dumps through the same pipeline as everything else: `walvault dump` ([`take`]),
//! `walvault dump-restore` and `walvault dump-fetch` ([`restore`]), why they fail ([`error`]),
//! the programs they run ([`child`]), the pipe pg_dump writes into and the thread reading it
//! ([`pipe`]), the rows counted in pg_dump's output ([`rows`]) and the row counts worked out from
//! them with the catalog ([`tables`]). What is stored is in `repo::dumps` and `repo::layout`;
//! `list`, `delete` and `verify` read dumps there.

pub mod child;
pub mod error;
pub mod pipe;
pub mod restore;
pub mod rows;
pub mod tables;
pub mod take;

pub use error::DumpError;
