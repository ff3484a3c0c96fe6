//! The repository: [`Storage`] builds an `Arc<dyn ObjectStore>` from the repo URL (local
//! directory with fsync, S3, GCS, Azure) and runs every call through the one retry helper, named
//! by operation and key, with "not found" and "already exists" kept distinct. What is stored
//! where is [`layout`]'s; what the stored things mean is [`identity`]'s, [`descriptor`]'s,
//! [`dumps`]'s and [`inventory`]'s; [`seal`] writes a backup's or dump's descriptor last, in a
//! handshake with `delete`.
//!
//! Listing never collects a whole prefix: [`Storage::list_dir`] lists one level (the objects and
//! the folders directly under a prefix), and [`Storage::list`] is for prefixes known to be small
//! (one backup's folder, one `wal/<TLI+LOG>/` folder of at most 4096 segments).

pub mod descriptor;
pub mod dumps;
pub mod error;
pub mod identity;
pub mod inventory;
pub mod layout;
pub mod lazy;
pub mod local_read;
pub mod retry;
pub mod seal;
#[cfg(test)]
pub mod testutil;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3CopyIfNotExists};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    ClientConfigKey, GetOptions, GetRange, GetResult, GetResultPayload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use crate::config::{Config, RepoUrl};
pub use error::StorageError;
use error::one_line;
use lazy::LazyStore;
use retry::{RetryPolicy, retry};

/// The longest a connection attempt may take (capped by the request timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Keys per bulk delete request (S3's DeleteObjects takes at most 1000).
pub const DELETE_BATCH: usize = 1000;

/// One level of a listing: what [`Storage::list_dir`] returns.
#[derive(Debug, Clone, Default)]
pub struct DirListing {
    /// The objects directly under the prefix, by key.
    pub objects: Vec<ObjectMeta>,
    /// The folders directly under it (each a prefix of more objects), by key.
    pub dirs: Vec<Path>,
}

/// Whether opening the repository may create it (a local directory) or must find it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Writers: a missing local repository directory is created.
    Create,
    /// Readers: a missing local repository directory is an error, never "not found".
    MustExist,
    /// Readers that check a local repository directory themselves: it is neither created nor
    /// refused here. wal-fetch must tell a directory that was never there (a wrong `repo`) from
    /// one that disappeared under a standby that read from it before.
    Unchecked,
}

/// The repository: an object store plus the retry policy.
#[derive(Debug, Clone)]
pub struct Storage {
    /// Built on first use: calls that answer from local state never pay for a cloud client.
    store: LazyStore,
    /// The same repository with object_store's per-request retries on, for multipart uploads.
    multipart: LazyStore,
    policy: RetryPolicy,
    url: String,
    /// Whether [`Storage::copy_if_absent`] is atomic, create-only and durable when it returns
    /// here (see [`Storage::has_create_only_copy`]).
    create_only_copy: bool,
}

/// The error for a `[storage]` option that repositories of `scheme` do not know.
fn unknown_option(k: &str, scheme: &str) -> StorageError {
    StorageError::Config(format!("unknown [storage] option `{k}` for {scheme} repositories"))
}

/// Builds the object store for `cfg.repo` with object_store's own retries set to `retry`
/// (after [`check_options`]).
fn build(cfg: &Config, retry: RetryConfig) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let timeout = format!("{}ms", cfg.timeout.as_millis());
    let connect = format!("{}ms", cfg.timeout.min(CONNECT_TIMEOUT).as_millis());
    let build_err =
        |e: object_store::Error| StorageError::Config(format!("repo {}: {}", cfg.repo, one_line(&e)));
    // The cloud builders have the same methods but no common trait: one macro configures each
    // (provider variables from the environment, our timeouts and retries, then [storage] options).
    macro_rules! cloud {
        ($builder:expr, $client_key:path, $scheme:literal, $prefix:expr) => {{
            let mut b = $builder
                .with_retry(retry.clone())
                .with_config($client_key(ClientConfigKey::Timeout), &timeout)
                .with_config($client_key(ClientConfigKey::ConnectTimeout), &connect);
            for (k, v) in &cfg.storage.0 {
                b = b.with_config(k.parse().map_err(|_| unknown_option(k, $scheme))?, v);
            }
            (Arc::new(b.build().map_err(build_err)?) as Arc<dyn ObjectStore>, $prefix.as_str())
        }};
    }
    let (store, prefix): (Arc<dyn ObjectStore>, &str) = match &cfg.repo {
        RepoUrl::Local(dir) => {
            // Deleting the last object of a folder removes the folder (never the repository's
            // own directory), as object stores have no empty folders to list.
            let fs = LocalFileSystem::new_with_prefix(dir)
                .map_err(build_err)?
                .with_fsync(true)
                .with_automatic_cleanup(true);
            (Arc::new(fs), "")
        }
        // Create-only copies (large WAL segments, `wal_push::large`) as a multipart upload of
        // one copied part completed with If-None-Match (a `[storage]` option may choose another).
        RepoUrl::S3 { bucket, prefix } => cloud!(
            {
                let b = AmazonS3Builder::from_env().with_bucket_name(bucket);
                // AWS_COPY_IF_NOT_EXISTS in the environment chooses too.
                match std::env::var_os("AWS_COPY_IF_NOT_EXISTS") {
                    Some(_) => b,
                    None => b.with_copy_if_not_exists(S3CopyIfNotExists::Multipart),
                }
            },
            AmazonS3ConfigKey::Client,
            "s3://",
            prefix
        ),
        RepoUrl::Gcs { bucket, prefix } => cloud!(
            GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket),
            GoogleConfigKey::Client,
            "gs://",
            prefix
        ),
        RepoUrl::Azure { container, prefix } => cloud!(
            MicrosoftAzureBuilder::from_env().with_container_name(container),
            AzureConfigKey::Client,
            "az://",
            prefix
        ),
    };
    Ok(if prefix.is_empty() { store } else { Arc::new(PrefixStore::new(store, prefix)) })
}

/// Refuses `[storage]` options the repository's kind does not know (what building its client
/// would refuse), without building it.
fn check_options(cfg: &Config) -> Result<(), StorageError> {
    let (scheme, known): (&str, fn(&str) -> bool) = match &cfg.repo {
        RepoUrl::Local(_) => ("file://", |_| false),
        RepoUrl::S3 { .. } => ("s3://", |k| k.parse::<AmazonS3ConfigKey>().is_ok()),
        RepoUrl::Gcs { .. } => ("gs://", |k| k.parse::<GoogleConfigKey>().is_ok()),
        RepoUrl::Azure { .. } => ("az://", |k| k.parse::<AzureConfigKey>().is_ok()),
    };
    match cfg.storage.0.iter().find(|(k, _)| !known(k)) {
        Some((k, _)) => Err(unknown_option(k, scheme)),
        None => Ok(()),
    }
}

/// An object's metadata and its bytes as a stream; a local file is read in large blocks.
fn into_stream(key: &Path, r: GetResult) -> (ObjectMeta, BoxStream<'static, Result<Bytes, StorageError>>) {
    let k = key.clone();
    let stream = match r.payload {
        GetResultPayload::File(file, _) => crate::repo::local_read::stream(file, r.range)
            .map_err(move |e| StorageError::Unavailable { op: format!("GET {k}"), message: e.to_string() })
            .boxed(),
        GetResultPayload::Stream(s) => s.map_err(move |e| StorageError::from_store("GET", &k, e)).boxed(),
    };
    (r.meta, stream)
}

/// The error for a local repository directory that does not exist.
pub fn missing_dir(dir: &std::path::Path) -> StorageError {
    StorageError::Config(format!("repository directory {} does not exist: check repo", dir.display()))
}

impl Storage {
    /// Opens the configured repository.
    pub fn open(cfg: &Config, mode: OpenMode) -> Result<Storage, StorageError> {
        let policy = RetryPolicy::new(cfg.retries, cfg.timeout);
        // Options are checked before anything is created.
        check_options(cfg)?;
        if let RepoUrl::Local(dir) = &cfg.repo
            && !dir.is_dir()
        {
            match mode {
                OpenMode::MustExist => return Err(missing_dir(dir)),
                OpenMode::Create => std::fs::create_dir_all(dir).map_err(|e| {
                    StorageError::Config(format!("cannot create repository directory {}: {e}", dir.display()))
                })?,
                OpenMode::Unchecked => {}
            }
        }
        // Retries are ours (one policy for every backend), so object_store's are off, except for
        // multipart uploads: a failed part cannot be sent again through object_store's API.
        // The clients are built when first needed.
        let c = Arc::new(cfg.clone());
        let m = c.clone();
        let store = LazyStore::new(move || build(&c, RetryConfig { max_retries: 0, ..Default::default() }));
        let multipart = LazyStore::new(move || {
            let retry_timeout = RetryPolicy::new(m.retries, m.timeout).bound();
            build(&m, RetryConfig { max_retries: m.retries as usize, retry_timeout, ..Default::default() })
        });
        // Azure's Copy Blob may finish after it answers (`x-ms-copy-status: pending`), and
        // object_store does not wait for it; GCS's copy is not tested here (fake-gcs). Both
        // keep the in-memory create-only PUT for every size.
        let create_only_copy = matches!(cfg.repo, RepoUrl::Local(_) | RepoUrl::S3 { .. });
        Ok(Storage { store, multipart, policy, url: cfg.repo.to_string(), create_only_copy })
    }

    /// A repository on an arbitrary store (tests use `InMemory`).
    pub fn from_store(store: Arc<dyn ObjectStore>, policy: RetryPolicy, url: &str) -> Storage {
        let store = LazyStore::ready(store);
        Storage { multipart: store.clone(), store, policy, url: url.to_string(), create_only_copy: true }
    }

    /// The repository URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Writes an object only if none exists at `key`; durable when it returns `Ok`.
    pub async fn put_if_absent(&self, key: &Path, payload: PutPayload) -> Result<(), StorageError> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        retry(&self.policy, &format!("PUT {key}"), || async {
            self.store
                .get()?
                .put_opts(key, payload.clone(), opts.clone())
                .await
                .map(|_| ())
                .map_err(|e| StorageError::from_store("PUT", key, e))
        })
        .await
    }

    /// Whether [`Storage::copy_if_absent`] may be used: on this backend the copy is create-only,
    /// atomic and complete when it returns (file://: a hard link; S3: one copied part completed
    /// with If-None-Match; in-memory stores). Not on Azure (a copy may still be pending when it
    /// answers) nor GCS (untested).
    pub fn has_create_only_copy(&self) -> bool {
        self.create_only_copy
    }

    /// Copies the object at `from` to `to` only if none exists at `to` (then
    /// [`StorageError::AlreadyExists`], as [`Storage::put_if_absent`]); durable when it returns
    /// `Ok`. Only where [`Storage::has_create_only_copy`].
    pub async fn copy_if_absent(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        retry(&self.policy, &format!("COPY {from} to {to}"), || async {
            self.store
                .get()?
                .copy_if_not_exists(from, to)
                .await
                .map_err(|e| StorageError::from_store("COPY", to, e))
        })
        .await
    }

    /// Writes (or replaces) a small object that is not archive data: only walvault's own
    /// bookkeeping (`verify/`) is ever overwritten, never WAL, backups or markers.
    pub async fn put(&self, key: &Path, payload: PutPayload) -> Result<(), StorageError> {
        retry(&self.policy, &format!("PUT {key}"), || async {
            self.store
                .get()?
                .put_opts(key, payload.clone(), PutOptions::default())
                .await
                .map(|_| ())
                .map_err(|e| StorageError::from_store("PUT", key, e))
        })
        .await
    }

    /// Reads a whole (small) object.
    pub async fn get_bytes(&self, key: &Path) -> Result<Bytes, StorageError> {
        retry(&self.policy, &format!("GET {key}"), || async {
            let r = self.store.get()?.get(key).await.map_err(|e| StorageError::from_store("GET", key, e))?;
            r.bytes().await.map_err(|e| StorageError::from_store("GET", key, e))
        })
        .await
    }

    /// Starts reading an object as a stream (one attempt: the caller retries the whole
    /// read-and-decode, since a stream cut halfway must start over).
    pub async fn get_stream(
        &self,
        key: &Path,
    ) -> Result<(ObjectMeta, BoxStream<'static, Result<Bytes, StorageError>>), StorageError> {
        let r = self.store.get()?.get(key).await.map_err(|e| StorageError::from_store("GET", key, e))?;
        Ok(into_stream(key, r))
    }

    /// Starts reading an object from byte `offset` on, as a stream (one attempt: a reader that
    /// was cut off resumes with another call from where it stopped, and compares the returned
    /// metadata's ETag with the first response's, so a changed object is not spliced).
    pub async fn get_stream_from(
        &self,
        key: &Path,
        offset: u64,
    ) -> Result<(ObjectMeta, BoxStream<'static, Result<Bytes, StorageError>>), StorageError> {
        if offset == 0 {
            return self.get_stream(key).await;
        }
        let opts = GetOptions { range: Some(GetRange::Offset(offset)), ..Default::default() };
        let r = self
            .store
            .get()?
            .get_opts(key, opts)
            .await
            .map_err(|e| StorageError::from_store("GET", key, e))?;
        Ok(into_stream(key, r))
    }

    /// Starts a multipart upload to `key` (for objects too large to hold in memory). The object
    /// appears only when the upload is finished; abort it on failure.
    pub async fn start_multipart(
        &self,
        key: &Path,
        chunk_size: usize,
    ) -> Result<WriteMultipart, StorageError> {
        let upload = retry(&self.policy, &format!("start upload {key}"), || async {
            self.multipart
                .get()?
                .put_multipart(key)
                .await
                .map_err(|e| StorageError::from_store("PUT", key, e))
        })
        .await?;
        Ok(WriteMultipart::new_with_chunk_size(upload, chunk_size))
    }

    /// Every object under `prefix`, at any depth, collected: only for prefixes known to be small
    /// (one backup's folder, one `wal/<TLI+LOG>/` folder). Large ones are walked a level at a
    /// time with [`Storage::list_dir`].
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, StorageError> {
        retry(&self.policy, &format!("LIST {prefix}"), || async {
            self.store
                .get()?
                .list(Some(prefix))
                .try_collect()
                .await
                .map_err(|e| StorageError::from_store("LIST", prefix, e))
        })
        .await
    }

    /// One level under `prefix`: the objects directly in it and the folders below it, each
    /// sorted by key.
    pub async fn list_dir(&self, prefix: &Path) -> Result<DirListing, StorageError> {
        let mut r = retry(&self.policy, &format!("LIST {prefix}/"), || async {
            self.store
                .get()?
                .list_with_delimiter(Some(prefix))
                .await
                .map_err(|e| StorageError::from_store("LIST", prefix, e))
        })
        .await?;
        r.objects.sort_by(|a, b| a.location.cmp(&b.location));
        r.common_prefixes.sort();
        Ok(DirListing { objects: r.objects, dirs: r.common_prefixes })
    }

    /// Deletes every object in `keys` (missing ones are not an error), in batches of
    /// [`DELETE_BATCH`] keys: one bulk request where the store has one (S3's DeleteObjects),
    /// each batch retried as a whole through the retry helper.
    pub async fn delete_many(&self, keys: &[Path]) -> Result<(), StorageError> {
        for batch in keys.chunks(DELETE_BATCH) {
            let (first, last) = (&batch[0], &batch[batch.len() - 1]);
            let what = format!("DELETE {} objects ({first} .. {last})", batch.len());
            retry(&self.policy, &what, || async {
                let store = self.store.get()?;
                let owned: Vec<Path> = batch.to_vec();
                let locations = futures::stream::iter(owned.into_iter().map(Ok)).boxed();
                let mut results = store.delete_stream(locations);
                while let Some(r) = results.next().await {
                    match r {
                        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(StorageError::from_store("DELETE", first, e)),
                    }
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes an object (a missing one is not an error).
    pub async fn delete(&self, key: &Path) -> Result<(), StorageError> {
        retry(&self.policy, &format!("DELETE {key}"), || async move {
            match self.store.get()?.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(StorageError::from_store("DELETE", key, e)),
            }
        })
        .await
    }

    /// The object's metadata.
    pub async fn head(&self, key: &Path) -> Result<ObjectMeta, StorageError> {
        retry(&self.policy, &format!("HEAD {key}"), || async {
            self.store.get()?.head(key).await.map_err(|e| StorageError::from_store("HEAD", key, e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn mem() -> Storage {
        Storage::from_store(
            Arc::new(InMemory::new()),
            RetryPolicy::new(1, Duration::from_secs(5)),
            "memory://",
        )
    }

    #[tokio::test]
    async fn batch_deletes_go_in_batches_through_the_retry_helper() {
        use std::sync::atomic::Ordering;
        let store = Arc::new(testutil::TestStore::default());
        let s = testutil::mem_storage(store.clone(), RetryPolicy::new(2, Duration::from_secs(5)));
        let keys: Vec<Path> = (0..2 * DELETE_BATCH + 3).map(|i| Path::from(format!("d/{i}"))).collect();
        for k in keys.iter().step_by(7) {
            s.put_if_absent(k, PutPayload::from_static(b"x")).await.unwrap();
        }
        // The first bulk request fails as a store under load does: that batch is sent again.
        store.fail_deletes.store(1, Ordering::SeqCst);
        s.delete_many(&keys).await.unwrap();
        assert!(s.list(&Path::from("d")).await.unwrap().is_empty());
        assert_eq!(store.deletes.load(Ordering::SeqCst), 3 + 1, "three batches, one of them twice");
        // Past the policy's retries the failure is the caller's.
        s.put_if_absent(&keys[0], PutPayload::from_static(b"x")).await.unwrap();
        store.fail_deletes.store(3, Ordering::SeqCst);
        let err = s.delete_many(&keys[..1]).await.unwrap_err();
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
        assert!(err.to_string().contains("DELETE"), "{err}");
        s.delete_many(&[]).await.unwrap();
    }

    #[tokio::test]
    async fn one_level_listings_are_sorted_and_never_recursive() {
        use std::sync::atomic::Ordering;
        let store = Arc::new(testutil::TestStore::default());
        let s = testutil::mem_storage(store.clone(), RetryPolicy::new(0, Duration::from_secs(5)));
        for k in ["p/b/1", "p/a/2", "p/z", "p/c", "p/a/b/3"] {
            s.put_if_absent(&Path::from(k), PutPayload::from_static(b"x")).await.unwrap();
        }
        let l = s.list_dir(&Path::from("p")).await.unwrap();
        let objects: Vec<String> = l.objects.iter().map(|o| o.location.to_string()).collect();
        let dirs: Vec<String> = l.dirs.iter().map(ToString::to_string).collect();
        assert_eq!(objects, ["p/c", "p/z"]);
        assert_eq!(dirs, ["p/a", "p/b"]);
        assert_eq!(store.recursive_lists.load(Ordering::SeqCst), 0);
        assert_eq!(store.level_lists.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn create_only_and_not_found_stay_distinct() {
        let s = mem();
        let key = Path::from("a/b");
        assert!(matches!(s.get_bytes(&key).await, Err(StorageError::NotFound { .. })));
        assert!(matches!(s.head(&key).await, Err(StorageError::NotFound { .. })));
        s.put_if_absent(&key, PutPayload::from_static(b"one")).await.unwrap();
        let again = s.put_if_absent(&key, PutPayload::from_static(b"two")).await;
        assert!(matches!(again, Err(StorageError::AlreadyExists { .. })));
        assert_eq!(s.get_bytes(&key).await.unwrap(), Bytes::from_static(b"one"));
    }

    #[tokio::test]
    async fn create_only_copies_never_replace_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let local = config(&format!("file://{}", dir.path().display()), &[]);
        for s in [mem(), Storage::open(&local, OpenMode::MustExist).unwrap()] {
            assert!(s.has_create_only_copy());
            let (from, to) = (Path::from("tmp/a"), Path::from("wal/x/a"));
            s.put_if_absent(&from, PutPayload::from_static(b"new")).await.unwrap();
            s.copy_if_absent(&from, &to).await.unwrap();
            assert_eq!(s.get_bytes(&to).await.unwrap(), Bytes::from_static(b"new"));
            s.put(&from, PutPayload::from_static(b"other")).await.unwrap();
            let again = s.copy_if_absent(&from, &to).await;
            assert!(matches!(again, Err(StorageError::AlreadyExists { .. })), "{again:?}");
            assert_eq!(s.get_bytes(&to).await.unwrap(), Bytes::from_static(b"new"));
            let missing = s.copy_if_absent(&Path::from("tmp/none"), &Path::from("wal/x/b")).await;
            assert!(missing.is_err());
        }
        let cfg = config("az://container/p", &[("azure_storage_account_name", "a")]);
        assert!(!Storage::open(&cfg, OpenMode::MustExist).unwrap().has_create_only_copy());
    }

    /// The configuration for `repo` with these `[storage]` options.
    fn config(repo: &str, options: &[(&str, &str)]) -> Config {
        let args = crate::config::ConfigArgs { repo: Some(repo.into()), ..Default::default() };
        let mut cfg = Config::resolve(&args).unwrap();
        cfg.storage.0.extend(options.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        cfg
    }

    #[tokio::test]
    async fn local_repositories_are_created_only_by_writers() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let cfg = config(&format!("file://{}", repo.display()), &[]);
        let err = Storage::open(&cfg, OpenMode::MustExist).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let s = Storage::open(&cfg, OpenMode::Create).unwrap();
        s.put_if_absent(&Path::from("x/y"), PutPayload::from_static(b"z")).await.unwrap();
        assert_eq!(std::fs::read(repo.join("x/y")).unwrap(), b"z");
        assert!(Storage::open(&cfg, OpenMode::MustExist).is_ok());
    }

    #[tokio::test]
    async fn local_objects_stream_in_large_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&format!("file://{}", dir.path().display()), &[]);
        let s = Storage::open(&cfg, OpenMode::MustExist).unwrap();
        let data: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i % 253) as u8).collect();
        let key = Path::from("big");
        s.put_if_absent(&key, PutPayload::from(data.clone())).await.unwrap();
        for offset in [0u64, 1000] {
            let (meta, stream) = s.get_stream_from(&key, offset).await.unwrap();
            assert_eq!(meta.size, data.len() as u64);
            let blocks: Vec<Bytes> = stream.try_collect().await.unwrap();
            // object_store's own stream of a local file gives 8 KiB blocks (385 of them here).
            assert!(blocks.len() <= 13, "{} blocks", blocks.len());
            assert_eq!(blocks.concat(), &data[offset as usize..]);
        }
    }

    #[test]
    fn clients_are_built_on_first_use_only() {
        let cfg = config("s3://bucket/p", &[("aws_region", "us-east-1")]);
        let s = Storage::open(&cfg, OpenMode::MustExist).unwrap();
        assert!(!s.store.is_built() && !s.multipart.is_built());
        s.store.get().unwrap();
        assert!(s.store.is_built() && !s.multipart.is_built());
    }

    #[test]
    fn unknown_storage_options_are_refused() {
        let cfg = config("s3://bucket/p", &[("aws_endpoint_uri", "http://x")]);
        let err = Storage::open(&cfg, OpenMode::MustExist).unwrap_err();
        assert!(err.to_string().contains("unknown [storage] option `aws_endpoint_uri`"), "{err}");
        let local = config("file:///tmp/walvault-never-created", &[("aws_region", "x")]);
        let err = Storage::open(&local, OpenMode::Create).unwrap_err();
        assert!(err.to_string().contains("`aws_region` for file:// repositories"), "{err}");
        assert!(!std::path::Path::new("/tmp/walvault-never-created").exists());
    }
}
