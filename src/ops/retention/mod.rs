//! `walvault delete`: retention. Reads what the repository holds, plans what a policy keeps
//! ([`plan`], pure), prints the plan (a dry run unless `--confirm`), and carries it out
//! ([`execute`]); [`error`] says why it could not.
//!
//! # Deletion order, and what a kill at each step leaves
//!
//! "A backup exists if and only if its descriptor does" stays true at every moment:
//!
//! 1. `backups/<id>.deleting` is written. Killed after it: the backup is still complete; the next
//!    run sees the marker and, if the policy still deletes the backup, goes on, else removes the
//!    marker.
//! 2. `backups/<id>.json`, the descriptor, is deleted. From here the backup does not exist for
//!    `list`, `restore` or another `delete`; killed after it, its folder is a deletion to finish
//!    (it has the marker), whatever its age.
//! 3. Its parts and manifest (`backups/<id>/…`), then its `.keep` and `.started` markers. Killed
//!    in between: more of the same leftovers; the next run finishes.
//! 4. `backups/<id>.deleting`. Killed before it: an empty deletion that the next run ends.
//! 5. Only when every backup that goes is gone: WAL, a `wal/<TLI+LOG>/` folder at a time. Every
//!    WAL object deleted is outside what the plan keeps, so no backup that stays loses WAL
//!    whenever this stops; the next run deletes the rest.
//!
//! Leftovers of failed backups (folders without a descriptor older than `older_than`) are
//! removed like step 3. A backup being taken (its `.started` marker is younger than
//! `older_than`) is never touched, nor the WAL from where it started.

pub mod error;
pub mod execute;
pub mod plan;

use std::fmt::Write as _;

use futures::TryStreamExt;
use serde::Serialize;

use crate::config::RetentionPolicy;
use crate::repo::Storage;
use crate::repo::identity;
use crate::repo::inventory::{self, Backups};
use crate::units::{UtcTime, human};
use crate::wal::WalSegSize;
pub use error::RetentionError;
use plan::{Action, FolderAction, Plan, WalFold, WalRange};

/// What `walvault delete` is asked to do.
#[derive(Clone, Debug)]
pub struct DeleteRequest {
    /// The policy (the file's `[retention]` with the flags over it).
    pub policy: RetentionPolicy,
    /// Delete this one backup instead of applying the policy.
    pub backup: Option<String>,
    /// Delete it even if it is marked keep.
    pub force: bool,
    /// Carry the plan out (without it: a dry run).
    pub confirm: bool,
}

/// What `delete` planned, and did.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The plan for backups and WAL.
    pub plan: Plan,
    /// The WAL ranges that go, per timeline.
    pub wal_deleted: Vec<WalRange>,
    /// WAL objects that stay.
    pub wal_objects_kept: u64,
    /// Bytes freed: backups and WAL.
    pub bytes_freed: u64,
    /// Whether the plan was carried out (`--confirm`), or only printed.
    pub executed: bool,
}

/// Plans and (with `confirm`) carries out a deletion at `now`.
pub async fn delete(storage: &Storage, req: &DeleteRequest, now: UtcTime) -> Result<Outcome, RetentionError> {
    let seg_size = segment_size(storage).await?;
    let Backups { backups, without_descriptor } = inventory::backups(storage).await?;
    let plan = match &req.backup {
        Some(id) => plan::one(&backups, &without_descriptor, id, req.force, now)?,
        None if !req.policy.has_rules() => return Err(RetentionError::NoPolicy),
        None => plan::plan(&backups, &without_descriptor, &req.policy, now),
    };
    if req.confirm {
        execute::backups(storage, &plan).await?;
    }
    let mut fold = WalFold::new(&plan, seg_size);
    if plan.wal_untouched.is_none() {
        let files = inventory::wal_files(storage);
        futures::pin_mut!(files);
        while let Some((_, objects)) = files.try_next().await? {
            let gone = fold.fold(&objects);
            if req.confirm && !gone.is_empty() {
                execute::wal(storage, &gone).await?;
            }
        }
    }
    let bytes_freed = plan.backup_bytes_freed() + fold.bytes();
    Ok(Outcome {
        wal_objects_kept: fold.kept_objects,
        wal_deleted: std::mem::take(&mut fold.ranges),
        bytes_freed,
        executed: req.confirm,
        plan,
    })
}

/// The repository's segment size (16 MiB when it has no identity yet).
async fn segment_size(storage: &Storage) -> Result<WalSegSize, RetentionError> {
    Ok(identity::read(storage)
        .await?
        .and_then(|i| WalSegSize::new(u64::from(i.wal_segment_size)).ok())
        .unwrap_or(WalSegSize::DEFAULT))
}

/// The outcome as text for a person.
pub fn render(o: &Outcome) -> String {
    let p = &o.plan;
    let mut s = String::new();
    let _ = writeln!(s, "retention policy: {} (at {})", p.policy, p.now);
    if let Some(w) = p.window_start {
        let _ = writeln!(s, "  point-in-time recovery window from {w}");
    }
    let _ = writeln!(s, "\nbackups:");
    if p.backups.is_empty() && p.folders.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for b in &p.backups {
        let what = match b.action {
            Action::Keep => "keep  ",
            Action::Delete => "DELETE",
            Action::KeepAndCancelDeletion => "keep* ",
        };
        let _ = writeln!(
            s,
            "  {what} {}  finished {}  timeline {}  {:>10}  {}",
            b.id,
            b.stop_time,
            b.timeline,
            human(b.stored_bytes),
            b.reasons.join("; ")
        );
        if b.action == Action::KeepAndCancelDeletion {
            let _ = writeln!(s, "         (an interrupted deletion of it is cancelled)");
        }
    }
    for f in &p.folders {
        let what = if f.action == FolderAction::Delete { "DELETE" } else { "leave " };
        let _ = writeln!(s, "  {what} {}  (no descriptor) {}", f.id, f.reason);
    }
    let _ = writeln!(s, "\nwal:");
    if let Some(why) = &p.wal_untouched {
        let _ = writeln!(s, "  nothing deleted: {why}");
    } else {
        for k in &p.wal_kept {
            match k.to {
                Some(to) => {
                    let _ = writeln!(s, "  keep {} to {}: {}", k.from, to, k.why);
                }
                None => {
                    let _ = writeln!(s, "  keep {} onward: {}", k.from, k.why);
                }
            }
        }
        if o.wal_deleted.is_empty() {
            let _ = writeln!(s, "  no WAL to delete");
        }
        for r in &o.wal_deleted {
            let _ = writeln!(
                s,
                "  DELETE timeline {}: {} - {}  {} objects, {}",
                r.timeline,
                r.first,
                r.last,
                r.objects,
                human(r.bytes)
            );
        }
        let _ = writeln!(s, "  {} WAL objects stay", o.wal_objects_kept);
    }
    let _ = writeln!(
        s,
        "\n{} {} backups and {} of WAL: {} {}",
        if o.executed { "deleted" } else { "would delete" },
        p.deleted().count(),
        human(o.wal_deleted.iter().map(|r| r.bytes).sum()),
        human(o.bytes_freed),
        if o.executed { "freed" } else { "to free" },
    );
    match p.oldest_restorable {
        Some(t) => {
            let _ = writeln!(
                s,
                "oldest moment a restore can reach {}: {t}",
                if o.executed { "now" } else { "after this" }
            );
        }
        None => {
            let _ = writeln!(s, "no backup stays: nothing can be restored");
        }
    }
    if !o.executed {
        let _ = writeln!(s, "dry run: nothing was deleted; run again with --confirm to carry this out");
    }
    s
}
