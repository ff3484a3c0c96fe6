//! The repository API on every backend walvault supports, one suite for all (object_store's
//! `integration.rs` is the model): create-only puts, "already exists", whole and ranged reads,
//! "not found", recursive and one-level listings, batch deletes, deletes of missing keys, and
//! multipart uploads, create-only copies (where the backend has them), through walvault's own `Storage` opened from a config file as the binaries
//! open it (`InMemory` through `Storage::from_store`).
//!
//! GCS runs the reading half only: no GCS emulator installable here accepts object_store's XML
//! uploads (see `support::gcs`), so its objects are seeded through the emulator's JSON API.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{PutPayload, memory::InMemory};
use walvault::config::{Config, ConfigArgs};
use walvault::repo::retry::RetryPolicy;
use walvault::repo::{OpenMode, Storage, StorageError};

use crate::support::Scratch;
use crate::support::repo::{Backend, Repo};

/// A repository under test, and how to put objects into it behind the API's back.
struct Fixture {
    storage: Storage,
    /// Keeps the server (and the bucket) alive; `None` for `InMemory`.
    repo: Option<Repo>,
    _scratch: Scratch,
}

impl Fixture {
    /// Writes `key` (through the API where it can write; through the emulator's own API on GCS).
    async fn seed(&self, key: &str, bytes: &[u8]) {
        match &self.repo {
            Some(repo) if is_gcs(&self.storage) => repo.overwrite(key, bytes.to_vec()),
            _ => {
                self.storage.put_if_absent(&Path::from(key), PutPayload::from(bytes.to_vec())).await.unwrap()
            }
        }
    }
}

fn is_gcs(s: &Storage) -> bool {
    s.url().starts_with("gs://")
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

async fn read_all(s: &Storage, key: &Path, offset: u64) -> Result<Vec<u8>, StorageError> {
    let (_, stream) = s.get_stream_from(key, offset).await?;
    let pieces: Vec<Bytes> = stream.try_collect().await?;
    Ok(pieces.concat())
}

async fn put_create_only(f: &Fixture) {
    let key = Path::from("put/one");
    let bytes = data(70_000, 1);
    f.storage.put_if_absent(&key, PutPayload::from(bytes.clone())).await.unwrap();
    assert_eq!(f.storage.get_bytes(&key).await.unwrap(), bytes);
    assert_eq!(f.storage.head(&key).await.unwrap().size, bytes.len() as u64);
}

async fn already_exists(f: &Fixture) {
    let key = Path::from("put/twice");
    f.storage.put_if_absent(&key, PutPayload::from_static(b"first")).await.unwrap();
    let again = f.storage.put_if_absent(&key, PutPayload::from_static(b"second")).await;
    assert!(matches!(again, Err(StorageError::AlreadyExists { .. })), "{again:?}");
    assert_eq!(f.storage.get_bytes(&key).await.unwrap(), Bytes::from_static(b"first"));
}

async fn get(f: &Fixture) {
    let bytes = data(300_000, 2);
    f.seed("get/obj", &bytes).await;
    let key = Path::from("get/obj");
    assert_eq!(f.storage.get_bytes(&key).await.unwrap(), bytes);
    let (meta, stream) = f.storage.get_stream(&key).await.unwrap();
    assert_eq!(meta.size, bytes.len() as u64);
    let pieces: Vec<Bytes> = stream.try_collect().await.unwrap();
    assert_eq!(pieces.concat(), bytes);
}

async fn ranged_get(f: &Fixture) {
    let bytes = data(300_000, 3);
    f.seed("range/obj", &bytes).await;
    let key = Path::from("range/obj");
    for offset in [0u64, 1, 1000, 262_144, bytes.len() as u64 - 1] {
        assert_eq!(
            read_all(&f.storage, &key, offset).await.unwrap(),
            &bytes[offset as usize..],
            "from {offset}"
        );
    }
}

async fn not_found(f: &Fixture) {
    let key = Path::from("missing/obj");
    let nf = |r: Result<_, StorageError>| matches!(r, Err(StorageError::NotFound { .. }));
    assert!(nf(f.storage.get_bytes(&key).await.map(|_| ())));
    assert!(nf(f.storage.head(&key).await.map(|_| ())));
    assert!(nf(f.storage.get_stream(&key).await.map(|_| ())));
    assert!(nf(f.storage.get_stream_from(&key, 5).await.map(|_| ())));
}

async fn list(f: &Fixture) {
    for k in ["l/a/1", "l/a/2", "l/b/3", "l/4", "lx/5"] {
        f.seed(k, k.as_bytes()).await;
    }
    let mut all: Vec<String> =
        f.storage.list(&Path::from("l")).await.unwrap().into_iter().map(|m| m.location.to_string()).collect();
    all.sort();
    assert_eq!(all, ["l/4", "l/a/1", "l/a/2", "l/b/3"]);
    let level = f.storage.list_dir(&Path::from("l")).await.unwrap();
    let objects: Vec<String> = level.objects.iter().map(|m| m.location.to_string()).collect();
    let dirs: Vec<String> = level.dirs.iter().map(|d| d.to_string()).collect();
    assert_eq!(objects, ["l/4"]);
    assert_eq!(dirs, ["l/a", "l/b"]);
    assert_eq!(level.objects[0].size, 3);
    assert!(f.storage.list(&Path::from("nothing")).await.unwrap().is_empty());
    let empty = f.storage.list_dir(&Path::from("nothing")).await.unwrap();
    assert!(empty.objects.is_empty() && empty.dirs.is_empty());
}

async fn batch_delete(f: &Fixture) {
    // More than one Azure batch (256) and more than one of ours in the unit tests.
    let keys: Vec<Path> = (0..300).map(|i| Path::from(format!("del/{}/{i:04}", i % 3))).collect();
    for k in &keys {
        f.seed(k.as_ref(), b"x").await;
    }
    f.seed("keep/one", b"y").await;
    let mut doomed = keys.clone();
    doomed.push(Path::from("del/never-there"));
    f.storage.delete_many(&doomed).await.unwrap();
    assert!(f.storage.list(&Path::from("del")).await.unwrap().is_empty());
    assert!(f.storage.list_dir(&Path::from("del")).await.unwrap().dirs.is_empty(), "empty folders left");
    assert_eq!(f.storage.list(&Path::from("keep")).await.unwrap().len(), 1);
}

async fn delete_missing(f: &Fixture) {
    f.storage.delete(&Path::from("gone/never")).await.unwrap();
    f.storage.delete_many(&[Path::from("gone/never"), Path::from("gone/either")]).await.unwrap();
    f.seed("gone/once", b"z").await;
    f.storage.delete(&Path::from("gone/once")).await.unwrap();
    f.storage.delete(&Path::from("gone/once")).await.unwrap();
    assert!(matches!(f.storage.head(&Path::from("gone/once")).await, Err(StorageError::NotFound { .. })));
}

async fn multipart(f: &Fixture) {
    let key = Path::from("mp/big");
    let bytes = data(13 << 20, 4);
    let mut w = f.storage.start_multipart(&key, 5 << 20).await.unwrap();
    for piece in bytes.chunks(1 << 20) {
        w.write(piece);
        w.wait_for_capacity(2).await.unwrap();
    }
    w.finish().await.unwrap();
    assert_eq!(f.storage.head(&key).await.unwrap().size, bytes.len() as u64);
    assert!(f.storage.get_bytes(&key).await.unwrap() == bytes);
}

/// A create-only copy (large WAL files, `wal_push::large`) where the backend has one: the copy
/// is whole, and a second one onto the same key is refused, leaving the first in place.
async fn copy_create_only(f: &Fixture) {
    assert!(f.storage.has_create_only_copy());
    let (from, to) = (Path::from("tmp/big"), Path::from("copied/big"));
    let bytes = data(6 << 20, 5);
    f.storage.put_if_absent(&from, PutPayload::from(bytes.clone())).await.unwrap();
    f.storage.copy_if_absent(&from, &to).await.unwrap();
    assert!(f.storage.get_bytes(&to).await.unwrap() == bytes);
    f.storage.delete(&from).await.unwrap();
    assert!(f.storage.get_bytes(&to).await.unwrap() == bytes, "deleting the source changed the copy");
    f.storage.put_if_absent(&from, PutPayload::from_static(b"other")).await.unwrap();
    let again = f.storage.copy_if_absent(&from, &to).await;
    assert!(matches!(again, Err(StorageError::AlreadyExists { .. })), "{again:?}");
    assert!(f.storage.get_bytes(&to).await.unwrap() == bytes, "a refused copy changed the object");
}

/// Azure's copies may finish after they answer: no create-only copy there.
async fn no_create_only_copy(f: &Fixture) {
    assert!(!f.storage.has_create_only_copy());
}

/// The fixture for `backend` (`memory` or one of [`Backend::named`]'s), or a loud skip.
fn fixture(backend: &str) -> Option<Fixture> {
    let scratch = Scratch::new();
    if backend == "memory" {
        let policy = RetryPolicy::new(2, Duration::from_secs(10));
        let storage = Storage::from_store(Arc::new(InMemory::new()), policy, "memory://");
        return Some(Fixture { storage, repo: None, _scratch: scratch });
    }
    let repo = match Repo::on(Backend::named(backend), &scratch) {
        Ok(r) => r,
        Err(why) => {
            if crate::support::in_ci() {
                panic!("required test dependency missing under CI=true: {why}");
            }
            eprintln!("SKIPPED (not in CI): {why}");
            return None;
        }
    };
    let cfg = repo.config(&scratch, "storage.toml", "timeout = \"20s\"\nretries = 2\n");
    let config = Config::resolve(&ConfigArgs { config: Some(cfg), ..Default::default() }).unwrap();
    let storage = Storage::open(&config, OpenMode::Create).unwrap();
    Some(Fixture { storage, repo: Some(repo), _scratch: scratch })
}

fn run<F: AsyncFnOnce(&Fixture)>(backend: &str, case: F) {
    let Some(f) = fixture(backend) else { return };
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(case(&f));
}

/// The suite's cases as tests `storage::<backend>::<case>`.
macro_rules! suite {
    ($backend:ident: $($case:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    super::run(stringify!($backend), super::$case);
                }
            )+
        }
    };
}

suite!(memory: put_create_only, already_exists, get, ranged_get, not_found, list, batch_delete, delete_missing, multipart, copy_create_only);
suite!(file: put_create_only, already_exists, get, ranged_get, not_found, list, batch_delete, delete_missing, multipart, copy_create_only);
suite!(s3: put_create_only, already_exists, get, ranged_get, not_found, list, batch_delete, delete_missing, multipart, copy_create_only);
suite!(azure: put_create_only, already_exists, get, ranged_get, not_found, list, batch_delete, delete_missing, multipart, no_create_only_copy);
// Reads, listings and deletes only: see the module's head.
suite!(gcs: get, ranged_get, not_found, list, batch_delete, delete_missing);
