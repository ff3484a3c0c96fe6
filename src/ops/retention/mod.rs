//! `walvault delete`: retention. Reads what the repository holds, plans what a policy keeps
//! ([`plan`], pure), prints the plan (a dry run unless `--confirm`), and carries it out
//! ([`execute`]); [`error`] says why it could not; [`tmp`] finds the leftover temporary uploads
//! of large wal-pushes.
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
//! 6. With the WAL, leftover temporary uploads under `tmp/` older than `older_than` ([`tmp`]):
//!    never read as WAL, so a kill at any point leaves only fewer of them.
//!
//! Leftovers of failed backups (folders without a descriptor older than `older_than`) are
//! removed like step 3, after their `.deleting` marker and a check that no young `.sealing`
//! marker and no descriptor is there now: a backup that paused longer than `older_than` and is
//! completing now is left alone, with the marker, which the next run cancels or finishes (the
//! handshake of `repo::seal`). A backup being taken (its `.started` marker is younger than
//! `older_than`) is never touched, nor the WAL from where it started.
//!
//! Logical dumps ([`dumps`], `[retention.dumps]`) go the same way, after the backups and before
//! WAL: `dumps/<id>.deleting`, then `dumps/<id>.json` (from here the dump does not exist: "a dump
//! exists iff its descriptor does"), then `dumps/<id>/…`, its `.keep` and `.started` markers,
//! and `dumps/<id>.deleting` last; killed at any step, the next run finishes a folder with the
//! marker whatever its age. The backup rules never delete a dump and the dump rules never
//! delete a backup or WAL: without `[retention.dumps]` nothing under `dumps/` is touched, and
//! with only `[retention.dumps]` no backup or WAL is.

pub mod dumps;
pub mod error;
pub mod execute;
pub mod plan;
pub mod tmp;

use std::fmt::Write as _;

use futures::TryStreamExt;
use serde::Serialize;

use crate::config::RetentionPolicy;
use crate::config::retention::DEFAULT_OLDER_THAN;
use crate::repo::Storage;
use crate::repo::dumps::{self as repo_dumps, Dumps};
use crate::repo::identity;
use crate::repo::inventory::{self, Backups};
use crate::units::{UtcTime, human};
use crate::wal::WalSegSize;
use dumps::DumpPlan;
pub use error::RetentionError;
use plan::{Action, FolderAction, Plan, WalFold, WalRange};
use tmp::TmpPlan;

/// What `walvault delete` is asked to do (by default: the policy, a dry run).
#[derive(Clone, Debug, Default)]
pub struct DeleteRequest {
    /// The policy (the file's `[retention]` with the flags over it).
    pub policy: RetentionPolicy,
    /// Delete this one backup instead of applying the policy.
    pub backup: Option<String>,
    /// Delete this one dump instead of applying the policy.
    pub dump: Option<String>,
    /// Delete it (the backup or dump asked for) even if it is marked keep.
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
    /// The plan for logical dumps.
    pub dumps: DumpPlan,
    /// Leftover temporary uploads under `tmp/`.
    pub tmp: TmpPlan,
    /// Bytes freed: backups, dumps, WAL and leftover temporary uploads.
    pub bytes_freed: u64,
    /// Whether the plan was carried out (`--confirm`), or only printed.
    pub executed: bool,
}

/// Plans and (with `confirm`) carries out a deletion at `now`.
pub async fn delete(storage: &Storage, req: &DeleteRequest, now: UtcTime) -> Result<Outcome, RetentionError> {
    let seg_size = segment_size(storage).await?;
    let Backups { backups, without_descriptor } = inventory::backups(storage).await?;
    let Dumps { dumps: all_dumps, without_descriptor: dump_folders } = repo_dumps::dumps(storage).await?;
    let (plan, dump_plan) = match (&req.backup, &req.dump) {
        (Some(id), _) => (
            plan::one(&backups, &without_descriptor, id, req.force, now)?,
            dumps::untouched(
                &all_dumps,
                &dump_folders,
                "one backup deleted with --backup: dumps are left alone",
            ),
        ),
        (None, Some(id)) => (
            plan::untouched(
                &backups,
                &without_descriptor,
                &format!("delete dump {id}"),
                "one dump deleted with --dump: backups and WAL are left alone",
                now,
            ),
            dumps::one(&all_dumps, &dump_folders, id, req.force)?,
        ),
        (None, None) if !req.policy.has_rules() && req.policy.dumps.is_none() => {
            return Err(RetentionError::NoPolicy);
        }
        (None, None) => (
            match req.policy.has_rules() {
                true => plan::plan(&backups, &without_descriptor, &req.policy, now),
                false => plan::untouched(
                    &backups,
                    &without_descriptor,
                    "no rules for backups",
                    "no rules for backups in [retention]: backups and WAL are left alone",
                    now,
                ),
            },
            match &req.policy.dumps {
                Some(p) => dumps::plan(&all_dumps, &dump_folders, p, now),
                None => dumps::untouched(
                    &all_dumps,
                    &dump_folders,
                    "no [retention.dumps]: no policy deletes a dump",
                ),
            },
        ),
    };
    if req.confirm {
        execute::backups(storage, &plan, &without_descriptor, req.policy.older_than).await?;
        let dumps_older_than = req.policy.dumps.as_ref().map_or(DEFAULT_OLDER_THAN, |d| d.older_than);
        execute::dumps(storage, &dump_plan, &dump_folders, (now, dumps_older_than)).await?;
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
    // With the backup rules (they govern what WAL archiving leaves), whether or not any WAL goes.
    let tmp_plan = if req.backup.is_none() && req.dump.is_none() && req.policy.has_rules() {
        let p = tmp::plan(storage, now, req.policy.older_than).await?;
        if req.confirm {
            tmp::execute(storage, &p).await?;
        }
        p
    } else {
        TmpPlan::untouched("no backup rules in this run")
    };
    let bytes_freed =
        plan.backup_bytes_freed() + dump_plan.bytes_freed() + fold.bytes() + tmp_plan.bytes_freed();
    Ok(Outcome {
        dumps: dump_plan,
        tmp: tmp_plan,
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
    render_tmp(&mut s, &o.tmp);
    render_dumps(&mut s, &o.dumps);
    let dumps_deleted = o.dumps.deleted().count();
    let tmp_deleted = o.tmp.deleted.len();
    let _ = writeln!(
        s,
        "\n{} {} backups{}{} and {} of WAL: {} {}",
        if o.executed { "deleted" } else { "would delete" },
        p.deleted().count(),
        if dumps_deleted > 0 { format!(", {dumps_deleted} dumps") } else { String::new() },
        if tmp_deleted > 0 { format!(", {tmp_deleted} temporary uploads") } else { String::new() },
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

/// The `tmp/` part of the plan, when it holds anything.
fn render_tmp(s: &mut String, t: &TmpPlan) {
    if t.untouched.is_some() || (t.deleted.is_empty() && t.young == 0 && t.foreign == 0) {
        return;
    }
    let _ = writeln!(s, "\ntemporary uploads (tmp/), older_than = {}:", t.older_than);
    for x in &t.deleted {
        let _ = writeln!(
            s,
            "  DELETE {}  written {}  {:>10}  left by an interrupted large wal-push",
            x.key,
            x.last_modified,
            human(x.bytes)
        );
    }
    if t.young > 0 {
        let _ = writeln!(s, "  leave  {} younger than older_than (an upload may be finishing)", t.young);
    }
    if t.foreign > 0 {
        let _ = writeln!(s, "  leave  {} not named as wal-push names its uploads", t.foreign);
    }
}

/// The dumps' part of the plan, when there is anything to say (a repository without dumps and
/// without `[retention.dumps]` prints what it always did).
fn render_dumps(s: &mut String, d: &DumpPlan) {
    let untouched = !d.changes_anything() && d.folders.iter().all(|f| f.action == FolderAction::Untouched);
    if d.dumps.is_empty() && d.folders.is_empty() && untouched && d.policy.starts_with("no ") {
        return;
    }
    let _ = writeln!(s, "\ndumps: {}", d.policy);
    if d.dumps.is_empty() && d.folders.is_empty() {
        let _ = writeln!(s, "  none");
    }
    let width = d.dumps.iter().map(|x| x.series.chars().count()).max().unwrap_or(0);
    for x in &d.dumps {
        let what = match x.action {
            Action::Keep => "keep  ",
            Action::Delete => "DELETE",
            Action::KeepAndCancelDeletion => "keep* ",
        };
        let _ = writeln!(
            s,
            "  {what} {}  finished {}  {:<width$}  {:>10}  {}",
            x.id,
            x.stop_time,
            x.series,
            human(x.stored_bytes),
            x.reasons.join("; ")
        );
        if x.action == Action::KeepAndCancelDeletion {
            let _ = writeln!(s, "         (an interrupted deletion of it is cancelled)");
        }
    }
    for f in &d.folders {
        let what = if f.action == FolderAction::Delete { "DELETE" } else { "leave " };
        let _ = writeln!(s, "  {what} {}  (no descriptor) {}", f.id, f.reason);
    }
}

#[cfg(test)]
mod tests;
