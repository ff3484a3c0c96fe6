//! `walvault list`: the repository's backups (from their descriptors, no key needed) and, per
//! timeline, the ranges of archived WAL with the gaps between them.

use std::fmt::Write as _;

use futures::TryStreamExt;
use serde::Serialize;

use crate::repo::descriptor::Descriptor;
use crate::repo::identity::{self, IdentityError};
use crate::repo::inventory::{self, TimelineWal, WalRanges};
use crate::repo::{Storage, StorageError};
use crate::units::human;
use crate::wal::lsn::WalSegSize;

/// What `list` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Listing {
    /// The repository URL.
    pub repo: String,
    /// The cluster's system identifier, if the repository has one.
    pub system_identifier: Option<String>,
    /// Every backup, oldest first.
    pub backups: Vec<Descriptor>,
    /// Archived WAL per timeline.
    pub wal: Vec<TimelineWal>,
}

/// Why the repository could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Its identity is unreadable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Reads everything `list` shows.
pub async fn listing(storage: &Storage) -> Result<Listing, ListError> {
    let identity = identity::read(storage).await?;
    let seg_size = identity
        .as_ref()
        .and_then(|i| WalSegSize::new(u64::from(i.wal_segment_size)).ok())
        .unwrap_or(WalSegSize::DEFAULT);
    // One wal/<TLI+LOG>/ folder at a time: memory grows with the ranges, not the segments.
    let mut wal = WalRanges::new(seg_size);
    let files = inventory::wal_files(storage);
    futures::pin_mut!(files);
    while let Some((_, objects)) = files.try_next().await? {
        objects.into_iter().for_each(|o| wal.add(o.name));
    }
    Ok(Listing {
        repo: storage.url().to_string(),
        system_identifier: identity.map(|i| i.system_identifier),
        backups: inventory::list_backups(storage).await?,
        wal: wal.finish(),
    })
}

/// The listing as text for a person.
pub fn render(l: &Listing) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "repository {} (system identifier {})",
        l.repo,
        l.system_identifier.as_deref().unwrap_or("none: nothing archived yet")
    );
    let _ = writeln!(s, "\nbackups: {}", l.backups.len());
    if !l.backups.is_empty() {
        let _ = writeln!(
            s,
            "  {:<18} {:<20} {:<20} {:>3} {:>12} {:>12} {:>10} {:>10} {:>6}",
            "id",
            "started (UTC)",
            "finished (UTC)",
            "tli",
            "start lsn",
            "stop lsn",
            "size",
            "stored",
            "ratio"
        );
    }
    for b in &l.backups {
        let _ = writeln!(
            s,
            "  {:<18} {:<20} {:<20} {:>3} {:>12} {:>12} {:>10} {:>10} {:>5.1}%",
            b.id,
            b.start_time.to_string().trim_end_matches('Z').replace('T', " "),
            b.stop_time.to_string().trim_end_matches('Z').replace('T', " "),
            b.timeline,
            b.start_lsn,
            b.stop_lsn,
            human(b.raw_bytes),
            human(b.stored_bytes),
            100.0 * b.ratio()
        );
    }
    let _ = writeln!(s, "\nwal:");
    if l.wal.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for t in &l.wal {
        let hist = if t.history { " (history file archived)" } else { "" };
        let _ = writeln!(s, "  timeline {}{hist}", t.timeline);
        let mut gaps = t.gaps.iter();
        for r in &t.ranges {
            let _ = writeln!(s, "    {} - {}  {} segments", r.first, r.last, r.segments);
            if let Some(g) = gaps.next() {
                let _ = writeln!(s, "    GAP {} - {}  {} missing", g.first, g.last, g.segments);
            }
        }
        for p in &t.partial {
            let _ = writeln!(s, "    {p}");
        }
    }
    s
}
