//! PostgreSQL's WAL vocabulary, parsed and printed without IO: positions, timelines and segment
//! sizes ([`lsn`]), the names of WAL files ([`name`]), a segment's long page header
//! ([`header`]), and timeline history files ([`history`]).

pub mod header;
pub mod history;
pub mod lsn;
pub mod name;

pub use header::SegmentHeader;
pub use lsn::{Lsn, TimelineId, WalSegSize};
pub use name::{SegmentName, WalFileName};
