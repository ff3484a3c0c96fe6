//! Test support: an in-memory repository, and [`TestStore`], an `InMemory` store that counts
//! what is asked of it and can cut GET streams, slow them down or fail bulk deletes, for the
//! tests of listing, batch deletes and resuming downloads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use super::Storage;
use super::retry::RetryPolicy;

/// A repository on `store` with `policy` (fast backoff).
pub fn mem_storage(store: Arc<dyn ObjectStore>, mut policy: RetryPolicy) -> Storage {
    policy.initial_backoff = Duration::from_millis(1);
    Storage::from_store(store, policy, "memory://")
}

/// `InMemory`, counting calls, with faults on request.
#[derive(Debug, Default)]
pub struct TestStore {
    /// Where the objects are.
    pub inner: InMemory,
    /// GET streams to cut after [`TestStore::cut_after`] bytes (counted down).
    pub cut_gets: AtomicUsize,
    /// Bytes a cut GET stream delivers before failing.
    pub cut_after: usize,
    /// Every GET stream delivers this many bytes per piece, each after this wait (a slow link).
    pub trickle: Option<(usize, Duration)>,
    /// GET requests made.
    pub gets: AtomicUsize,
    /// The keys of every GET, in order.
    pub got: std::sync::Mutex<Vec<String>>,
    /// Recursive LIST requests made.
    pub recursive_lists: AtomicUsize,
    /// One-level LIST requests made.
    pub level_lists: AtomicUsize,
    /// The most entries one LIST answer held.
    pub largest_answer: AtomicUsize,
    /// Bulk delete requests to fail with a transient error (counted down).
    pub fail_deletes: AtomicUsize,
    /// Bulk delete requests made.
    pub deletes: AtomicUsize,
}

impl TestStore {
    /// A store that cuts the first `cuts` GET streams after `after` bytes each.
    pub fn cutting(cuts: usize, after: usize) -> TestStore {
        TestStore { cut_gets: AtomicUsize::new(cuts), cut_after: after, ..Default::default() }
    }

    fn answered(&self, n: usize) {
        self.largest_answer.fetch_max(n, Ordering::SeqCst);
    }
}

fn countdown(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

impl std::fmt::Display for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestStore")
    }
}

#[async_trait::async_trait]
impl ObjectStore for TestStore {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(&self, l: &Path, o: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.got.lock().expect("not poisoned").push(l.to_string());
        let r = self.inner.get_opts(l, o).await?;
        if let Some((piece, wait)) = self.trickle {
            let (meta, range, attributes, extensions) =
                (r.meta.clone(), r.range.clone(), r.attributes.clone(), r.extensions.clone());
            let bytes = r.bytes().await?;
            let stream = futures::stream::iter((0..bytes.len()).step_by(piece.max(1)))
                .then(move |at| {
                    let slice = bytes.slice(at..(at + piece.max(1)).min(bytes.len()));
                    async move {
                        tokio::time::sleep(wait).await;
                        Ok(slice)
                    }
                })
                .boxed();
            let payload = GetResultPayload::Stream(stream);
            return Ok(GetResult { payload, meta, range, attributes, extensions });
        }
        if !countdown(&self.cut_gets) {
            return Ok(r);
        }
        let (meta, range, attributes, extensions) =
            (r.meta.clone(), r.range.clone(), r.attributes.clone(), r.extensions.clone());
        let bytes = r.bytes().await?;
        let keep = bytes.slice(..self.cut_after.min(bytes.len()));
        let stream = futures::stream::iter(vec![
            Ok(keep),
            Err(object_store::Error::Generic { store: "cut", source: "connection reset".into() }),
        ])
        .boxed();
        Ok(GetResult { payload: GetResultPayload::Stream(stream), meta, range, attributes, extensions })
    }
    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        if countdown(&self.fail_deletes) {
            let err = || object_store::Error::Generic { store: "test", source: "503 slow down".into() };
            return futures::stream::once(async move { Err(err()) }).boxed();
        }
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.recursive_lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.level_lists.fetch_add(1, Ordering::SeqCst);
        let r = self.inner.list_with_delimiter(prefix).await?;
        self.answered(r.objects.len() + r.common_prefixes.len());
        Ok(r)
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}
