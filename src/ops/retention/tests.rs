//! `delete` on an in-memory repository with backups, WAL and dumps: the dump rules reach dumps
//! only and the backup rules backups and WAL only; `--dump ID`; and a deletion killed after any
//! step never leaves a dump descriptor without its objects, and is finished by the next run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::dumps::fixtures::{dump, store, t};
use super::*;
use crate::config::DumpPolicy;
use crate::config::retention::DEFAULT_OLDER_THAN;
use crate::repo::descriptor::{Descriptor, StoredFile};
use crate::repo::dumps::{Dump, DumpDescriptor};
use crate::repo::layout::{self, Marker};
use crate::repo::retry::RetryPolicy;
use crate::repo::testutil::mem_storage;
use crate::wal::{Lsn, SegmentName, TimelineId, WalFileName};

const SEG: u64 = 16 << 20;

/// An `InMemory` store that dies after `budget` changes (PUTs and single deletes, each object
/// of a bulk delete counted): every later change fails, as if the process had been killed.
#[derive(Debug)]
struct Crashing {
    inner: Arc<InMemory>,
    budget: Arc<AtomicUsize>,
}

impl Crashing {
    fn take(budget: &AtomicUsize) -> object_store::Result<()> {
        match budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
            Ok(_) => Ok(()),
            Err(_) => Err(object_store::Error::Generic { store: "crashing", source: "killed".into() }),
        }
    }
}

impl std::fmt::Display for Crashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crashing")
    }
}

#[async_trait::async_trait]
impl ObjectStore for Crashing {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> object_store::Result<PutResult> {
        Self::take(&self.budget)?;
        self.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Self::take(&self.budget)?;
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(l, o).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let (inner, budget) = (self.inner.clone(), self.budget.clone());
        locations
            .then(move |p| {
                let (inner, budget) = (inner.clone(), budget.clone());
                async move {
                    let p = p?;
                    Crashing::take(&budget)?;
                    inner.delete(&p).await?;
                    Ok(p)
                }
            })
            .boxed()
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

fn storage_on(store: Arc<dyn ObjectStore>) -> Storage {
    mem_storage(store, RetryPolicy::new(0, Duration::from_secs(5)))
}

fn dump_policy(f: impl FnOnce(&mut DumpPolicy)) -> DumpPolicy {
    let mut p = DumpPolicy {
        retain: None,
        keep_within: None,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
        older_than: DEFAULT_OLDER_THAN,
    };
    f(&mut p);
    p
}

fn request(policy: RetentionPolicy) -> DeleteRequest {
    DeleteRequest { policy, backup: None, dump: None, force: false, confirm: true }
}

/// A backup started at `start` (RFC 3339) at segment `seg`, with one part, stored.
async fn store_backup(s: &Storage, start: &str, seg: u64) -> String {
    let start = t(start);
    let id = layout::backup_id(start.datetime());
    let part = format!("backups/{id}/base.tar.00001");
    let d = Descriptor {
        format: 1,
        id: id.clone(),
        label: String::new(),
        system_identifier: "7300000000000000001".into(),
        server_version: 170_002,
        timeline: TimelineId::new(1).unwrap(),
        start_lsn: Lsn(seg * SEG + 40),
        stop_lsn: Lsn(seg * SEG + 100),
        start_time: start,
        stop_time: UtcTime::from_datetime(start.datetime() + time::Duration::minutes(10)),
        wal_segment_size: SEG as u32,
        compression: "zstd:3".into(),
        key_id: None,
        walvault_version: "test".into(),
        archives: Vec::new(),
        manifest: StoredFile { key: String::new(), raw_bytes: 0, stored_bytes: 0, sha256: String::new() },
        raw_bytes: 10,
        stored_bytes: 5,
    };
    s.put(&part.as_str().into(), PutPayload::from_static(b"part")).await.unwrap();
    s.put(&layout::descriptor(&id), serde_json::to_vec(&d).unwrap().into()).await.unwrap();
    id
}

fn segment(n: u64) -> WalFileName {
    WalFileName::Segment(SegmentName::from_segno(TimelineId::new(1).unwrap(), n, WalSegSize::DEFAULT))
}

/// Three backups (segments 10, 20, 30), WAL segments 5..40, and six nightly dumps of `app`
/// (the second marked keep), all stored.
async fn repository(s: &Storage) -> (Vec<String>, Vec<Dump>) {
    let mut backups = Vec::new();
    for (day, seg) in [("2026-11-20", 10), ("2026-11-25", 20), ("2026-11-30", 30)] {
        backups.push(store_backup(s, &format!("{day}T01:00:00Z"), seg).await);
    }
    for n in 5..40 {
        s.put(&layout::wal(&segment(n)), PutPayload::from_static(b"wal")).await.unwrap();
    }
    let mut dumps = Vec::new();
    for day in 24..30 {
        let mut d = dump(&format!("2026-11-{day}T02:00:00Z"), &format!("2026-11-{day}T02:20:00Z"), &["app"]);
        d.kept = day == 25;
        store(s, &d).await;
        dumps.push(d);
    }
    (backups, dumps)
}

async fn keys(s: &Storage, prefix: &str) -> Vec<String> {
    let mut k: Vec<String> =
        s.list(&prefix.into()).await.unwrap().into_iter().map(|o| o.location.to_string()).collect();
    k.sort();
    k
}

/// Every dump descriptor in the repository lists only objects that are there.
async fn no_dump_without_its_objects(s: &Storage) {
    for key in keys(s, "dumps").await {
        if layout::dump_descriptor_id(&key.as_str().into()).is_none() {
            continue;
        }
        let d: DumpDescriptor =
            serde_json::from_slice(&s.get_bytes(&key.as_str().into()).await.unwrap()).unwrap();
        for o in d.objects() {
            assert!(s.head(&o.key.as_str().into()).await.is_ok(), "{key} is there but {} is not", o.key);
        }
    }
}

#[tokio::test]
async fn dump_rules_delete_dumps_only() {
    let s = storage_on(Arc::new(InMemory::new()));
    let (backups, dumps) = repository(&s).await;
    let now = t("2026-12-01T12:00:00Z");
    let wal_before = keys(&s, "wal").await;
    let backups_before = keys(&s, "backups").await;
    let policy = RetentionPolicy { dumps: Some(dump_policy(|p| p.retain = Some(2))), ..Default::default() };
    let mut req = request(policy);
    req.confirm = false;
    let dry = delete(&s, &req, now).await.unwrap();
    assert_eq!(dry.dumps.deleted().count(), 3, "{:?}", dry.dumps);
    assert_eq!(dry.plan.deleted().count(), 0);
    assert!(dry.wal_deleted.is_empty() && dry.plan.wal_untouched.is_some());
    assert_eq!(dry.bytes_freed, 3 * 300);
    assert_eq!(keys(&s, "dumps").await.len(), 6 * 2 + 1, "a dry run deletes nothing");
    let text = render(&dry);
    assert!(text.contains("dumps: retain = 2"), "{text}");
    assert!(text.contains("would delete 0 backups, 3 dumps and 0 B of WAL"), "{text}");
    let json = serde_json::to_value(&dry).unwrap();
    assert_eq!(json["dumps"]["dumps"].as_array().unwrap().len(), 6);
    assert_eq!(json["dumps"]["dumps"][0]["action"], "delete");

    let done = delete(&s, &request(req.policy.clone()), now).await.unwrap();
    assert!(done.executed);
    let left = crate::repo::dumps::dumps(&s).await.unwrap();
    let left: Vec<&str> = left.dumps.iter().map(|d| &d.descriptor.id[..8]).collect();
    assert_eq!(left, ["20261125", "20261128", "20261129"], "the kept one and the two newest");
    for d in [&dumps[0], &dumps[2], &dumps[3]] {
        let id = &d.descriptor.id;
        assert!(keys(&s, &format!("dumps/{id}")).await.is_empty());
        assert!(s.head(&layout::dump_marker(id, Marker::Deleting)).await.is_err());
    }
    assert_eq!(keys(&s, "wal").await, wal_before, "dump rules never delete WAL");
    assert_eq!(keys(&s, "backups").await, backups_before, "dump rules never delete backups");
    no_dump_without_its_objects(&s).await;

    // Backup rules alone: the backups and WAL they do not keep go, every dump stays.
    let dumps_before = keys(&s, "dumps").await;
    let backup_rules = RetentionPolicy { retain_full: Some(1), ..Default::default() };
    let o = delete(&s, &request(backup_rules), now).await.unwrap();
    assert_eq!(o.plan.deleted().count(), 2);
    assert!(!o.wal_deleted.is_empty());
    assert!(!o.dumps.changes_anything());
    assert_eq!(keys(&s, "dumps").await, dumps_before, "backup rules never touch dumps");
    assert!(s.head(&layout::descriptor(&backups[2])).await.is_ok());
    assert!(!render(&o).contains(" dumps and "), "{}", render(&o));
}

#[tokio::test]
async fn no_policy_at_all_is_refused_and_a_dump_table_alone_is_a_policy() {
    let s = storage_on(Arc::new(InMemory::new()));
    repository(&s).await;
    let now = t("2026-12-01T12:00:00Z");
    let mut req = request(RetentionPolicy::default());
    assert!(matches!(delete(&s, &req, now).await, Err(RetentionError::NoPolicy)));
    req.policy.dumps = Some(dump_policy(|p| p.keep_within = Some(Duration::from_secs(30 * 86_400))));
    let o = delete(&s, &req, now).await.unwrap();
    assert_eq!(o.dumps.deleted().count() + o.plan.deleted().count(), 0);
    assert_eq!(o.plan.policy, "no rules for backups");
}

#[tokio::test]
async fn one_dump_with_dump_id() {
    let s = storage_on(Arc::new(InMemory::new()));
    let (backups, dumps) = repository(&s).await;
    let now = t("2026-12-01T12:00:00Z");
    let backups_before = keys(&s, "backups").await;
    let mut req = request(RetentionPolicy::default());
    req.dump = Some(dumps[1].descriptor.id.clone());
    let e = delete(&s, &req, now).await.unwrap_err();
    assert!(matches!(e, RetentionError::DumpKept(_)), "{e}");
    assert!(e.to_string().contains("--force"));
    req.force = true;
    let o = delete(&s, &req, now).await.unwrap();
    assert_eq!(o.dumps.deleted().count(), 1);
    assert!(s.head(&layout::dump_descriptor(&dumps[1].descriptor.id)).await.is_err());
    assert!(s.head(&layout::dump_marker(&dumps[1].descriptor.id, Marker::Keep)).await.is_err());
    assert_eq!(keys(&s, "backups").await, backups_before);
    assert_eq!(keys(&s, "wal").await.len(), 35);
    // A backup id is not a dump; nor is a dump a backup.
    req.dump = Some(backups[0].clone());
    assert!(matches!(delete(&s, &req, now).await, Err(RetentionError::UnknownDump(_))));
    req.dump = None;
    req.backup = Some(dumps[0].descriptor.id.clone());
    assert!(matches!(delete(&s, &req, now).await, Err(RetentionError::UnknownBackup(_))));
    // --backup leaves dumps alone.
    req.backup = Some(backups[0].clone());
    let before = keys(&s, "dumps").await;
    delete(&s, &req, now).await.unwrap();
    assert_eq!(keys(&s, "dumps").await, before);
}

#[tokio::test]
async fn a_deletion_killed_after_any_step_leaves_no_descriptor_without_its_objects() {
    let policy = RetentionPolicy { dumps: Some(dump_policy(|p| p.retain = Some(1))), ..Default::default() };
    // Later than the store's clock by more than older_than: the leftover below is written now,
    // and a folder written to within older_than may be a dump being taken.
    let now = UtcTime::from_datetime(time::OffsetDateTime::now_utc() + time::Duration::days(2));
    let mut finished = false;
    for budget in 0.. {
        let inner = Arc::new(InMemory::new());
        let setup = storage_on(inner.clone());
        let (_, dumps) = repository(&setup).await;
        // Leftovers of a failed dump, to be removed too.
        let leftover = layout::dump_database("20261101T000000Z", 0);
        setup.put(&leftover, PutPayload::from_static(b"half")).await.unwrap();
        let counter = Arc::new(AtomicUsize::new(budget));
        let s = storage_on(Arc::new(Crashing { inner: inner.clone(), budget: counter.clone() }));
        let first = delete(&s, &request(policy.clone()), now).await;
        no_dump_without_its_objects(&setup).await;
        if first.is_ok() {
            finished = true;
        }
        // The next run (not killed) finishes: only the kept and the newest dump are left.
        counter.store(usize::MAX, Ordering::SeqCst);
        delete(&s, &request(policy.clone()), now).await.unwrap();
        let left = crate::repo::dumps::dumps(&setup).await.unwrap();
        assert!(left.without_descriptor.is_empty(), "budget {budget}: {:?}", left.without_descriptor);
        let ids: Vec<&str> = left.dumps.iter().map(|d| d.descriptor.id.as_str()).collect();
        assert_eq!(
            ids,
            [dumps[1].descriptor.id.as_str(), dumps[5].descriptor.id.as_str()],
            "budget {budget}"
        );
        let all = keys(&setup, "dumps").await;
        assert_eq!(all.len(), 2 * 2 + 1, "budget {budget}: {all:?}");
        if finished {
            assert!(budget > 10, "the deletion takes more than {budget} steps");
            break;
        }
    }
}

/// Folders planned as leftovers (no descriptor when listed) that a writer completes before the
/// plan is carried out: `delete` sees the `.sealing` marker or the descriptor that appeared after
/// its marker and keeps them whole (the handshake of `repo::seal`); a `.sealing` marker the
/// listing already saw (a writer killed while sealing) does not stop it.
#[tokio::test]
async fn a_folder_being_sealed_or_sealed_after_the_listing_is_kept() {
    let s = storage_on(Arc::new(InMemory::new()));
    let (_, _) = repository(&s).await;
    let (done, sealing, killed) = ("20261101T000000Z", "20261101T010000Z", "20261101T020000Z");
    let part = |id: &str| Path::from(format!("backups/{id}/base.tar.00001"));
    for id in [done, sealing, killed] {
        s.put(&part(id), PutPayload::from_static(b"part")).await.unwrap();
    }
    s.put(&layout::marker(killed, Marker::Sealing), PutPayload::from_static(b"")).await.unwrap();
    let late = dump("2026-11-02T00:00:00Z", "2026-11-02T00:10:00Z", &["app"]);
    let late_id = late.descriptor.id.clone();
    let late_object: Path = late.descriptor.databases[0].object.key.as_str().into();
    s.put(&late_object, PutPayload::from_static(b"dump bytes")).await.unwrap();
    // Later than the store's clock by more than older_than: every folder looks abandoned.
    let now = UtcTime::from_datetime(time::OffsetDateTime::now_utc() + time::Duration::days(2));
    let policy = RetentionPolicy {
        retain_full: Some(10),
        dumps: Some(dump_policy(|p| p.retain = Some(10))),
        ..Default::default()
    };
    let backups = inventory::backups(&s).await.unwrap();
    let p = plan::plan(&backups.backups, &backups.without_descriptor, &policy, now);
    for id in [done, sealing, killed] {
        let folder = p.folders.iter().find(|f| f.id == id).unwrap();
        assert_eq!(folder.action, FolderAction::Delete, "{id}: {}", folder.reason);
    }
    let found = repo_dumps::dumps(&s).await.unwrap();
    let dp = dumps::plan(&found.dumps, &found.without_descriptor, policy.dumps.as_ref().unwrap(), now);
    assert!(dp.folders.iter().any(|f| f.id == late_id && f.action == FolderAction::Delete));
    // After the listing: one backup and the dump finish, another backup is sealing now.
    assert_eq!(store_backup(&s, "2026-11-01T00:00:00Z", 3).await, done);
    store(&s, &late).await;
    s.put(&layout::marker(sealing, Marker::Sealing), PutPayload::from_static(b"")).await.unwrap();
    let hour = Duration::from_secs(3600);
    execute::backups(&s, &p, &backups.without_descriptor, hour).await.unwrap();
    execute::dumps(&s, &dp, &found.without_descriptor, (now, hour)).await.unwrap();
    for key in [layout::descriptor(done), part(done), part(sealing), layout::dump_descriptor(&late_id)] {
        assert!(s.head(&key).await.is_ok(), "{key} was deleted");
    }
    assert!(s.head(&late_object).await.is_ok(), "the dump's object was deleted");
    // Their `.deleting` markers stay (another delete may have written the same one).
    for key in [
        layout::marker(done, Marker::Deleting),
        layout::marker(sealing, Marker::Deleting),
        layout::dump_marker(&late_id, Marker::Deleting),
    ] {
        assert!(s.head(&key).await.is_ok(), "{key} was removed");
    }
    // The killed writer's folder goes, its .sealing marker with it.
    assert!(keys(&s, &format!("backups/{killed}")).await.is_empty());
    assert!(s.head(&layout::marker(killed, Marker::Sealing)).await.is_err());
    // The next run cancels the markers of what has a descriptor now.
    delete(&s, &request(policy.clone()), now).await.unwrap();
    for key in [layout::marker(done, Marker::Deleting), layout::dump_marker(&late_id, Marker::Deleting)] {
        assert!(s.head(&key).await.is_err(), "{key} was left behind");
    }
    assert!(s.head(&layout::descriptor(done)).await.is_ok() && s.head(&part(done)).await.is_ok());
    assert!(s.head(&layout::dump_descriptor(&late_id)).await.is_ok() && s.head(&late_object).await.is_ok());
}

/// A deletion that did not finish is planned whatever its age, but a young `.sealing` marker
/// its listing saw still stops it: a writer may be between its check and its descriptor.
#[tokio::test]
async fn a_young_sealing_marker_stops_even_an_unfinished_deletion() {
    let s = storage_on(Arc::new(InMemory::new()));
    repository(&s).await;
    let id = "20261101T000000Z";
    let part = Path::from(format!("backups/{id}/base.tar.00001"));
    for key in [part.clone(), layout::marker(id, Marker::Deleting), layout::marker(id, Marker::Sealing)] {
        s.put(&key, PutPayload::from_static(b"")).await.unwrap();
    }
    let now = UtcTime::now();
    let backups = inventory::backups(&s).await.unwrap();
    let policy = RetentionPolicy { retain_full: Some(3), ..Default::default() };
    let p = plan::plan(&backups.backups, &backups.without_descriptor, &policy, now);
    let folder = p.folders.iter().find(|f| f.id == id).unwrap();
    assert_eq!(folder.action, FolderAction::Delete, "{}", folder.reason);
    execute::backups(&s, &p, &backups.without_descriptor, DEFAULT_OLDER_THAN).await.unwrap();
    assert!(s.head(&part).await.is_ok(), "a folder being sealed was deleted");
}

/// Leftover temporary uploads of large wal-pushes go with the backup rules once older than
/// `older_than`, after a dry run that lists them; young ones, keys wal-push does not write, and
/// runs without backup rules leave `tmp/` alone.
#[tokio::test]
async fn leftover_temporary_uploads_go_with_the_backup_rules_once_old() {
    let s = storage_on(Arc::new(InMemory::new()));
    repository(&s).await;
    let leftover = layout::wal_upload(&segment(41), 0x1234);
    s.put(&leftover, PutPayload::from_static(b"a leftover upload")).await.unwrap();
    let foreign = Path::from("tmp/notes.txt");
    s.put(&foreign, PutPayload::from_static(b"someone else's")).await.unwrap();
    // InMemory stamps objects with the real time: "now" a day and a minute later makes them old.
    let written = UtcTime::from_datetime(time::OffsetDateTime::now_utc());
    let later = UtcTime::from_datetime(written.datetime() + time::Duration::minutes(24 * 60 + 1));
    let backup_rules = RetentionPolicy { retain_full: Some(3), ..Default::default() };

    // Young: it stays, and is said to.
    let mut req = request(backup_rules.clone());
    req.confirm = false;
    let young = delete(&s, &req, written).await.unwrap();
    assert!(young.tmp.deleted.is_empty());
    assert_eq!((young.tmp.young, young.tmp.foreign), (1, 1));
    assert!(render(&young).contains("leave  1 younger than older_than"), "{}", render(&young));

    // Old, dry run: listed and counted, nothing deleted.
    let dry = delete(&s, &req, later).await.unwrap();
    assert_eq!(dry.tmp.deleted.len(), 1);
    assert_eq!(dry.tmp.deleted[0].key, leftover.to_string());
    assert_eq!(dry.bytes_freed, dry.tmp.bytes_freed() + dry.wal_deleted.iter().map(|r| r.bytes).sum::<u64>());
    assert_eq!(dry.tmp.bytes_freed(), 17);
    let text = render(&dry);
    assert!(text.contains(&format!("DELETE {leftover}")), "{text}");
    assert!(text.contains("would delete 0 backups, 1 temporary uploads and"), "{text}");
    assert!(s.head(&leftover).await.is_ok(), "a dry run deletes nothing");

    // Dump rules alone never touch tmp/.
    let dump_rules =
        RetentionPolicy { dumps: Some(dump_policy(|p| p.retain = Some(10))), ..Default::default() };
    let o = delete(&s, &request(dump_rules), later).await.unwrap();
    assert!(o.tmp.untouched.is_some() && o.tmp.deleted.is_empty());
    assert!(s.head(&leftover).await.is_ok());

    // Confirmed: the leftover goes, the foreign object stays.
    let done = delete(&s, &request(backup_rules), later).await.unwrap();
    assert!(done.executed && done.tmp.deleted.len() == 1);
    assert!(s.head(&leftover).await.is_err());
    assert!(s.head(&foreign).await.is_ok(), "only keys wal-push writes are removed");
}
