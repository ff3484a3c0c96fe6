//! Logical dumps through the same pipeline as everything else: `walvault dump` ([`take`]),
//! `walvault dump-restore` and `walvault dump-fetch` ([`restore`]), why they fail ([`error`]),
//! and the programs they run ([`child`]). What is stored is in `repo::dumps` and `repo::layout`; `list`, `delete` and
//! `verify` read dumps there.

pub mod child;
pub mod error;
pub mod pipe;
pub mod restore;
pub mod rows;
pub mod tables;
pub mod take;

pub use error::DumpError;
