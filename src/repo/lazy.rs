//! An object store built on first use. Building a cloud client costs about 5 ms of CPU (TLS
//! roots, HTTP client), which is a third of a `wal-push` call that only confirms a segment pushed
//! ahead and of a `wal-fetch` call served from the prefetch spool: neither sends a request.

use std::sync::{Arc, OnceLock};

use object_store::ObjectStore;

use super::error::StorageError;

/// A shared object store.
pub type Store = Arc<dyn ObjectStore>;
type Make = dyn Fn() -> Result<Store, StorageError> + Send + Sync;

/// An object store made by `make` the first time it is needed, then shared by every clone.
#[derive(Clone)]
pub struct LazyStore {
    cell: Arc<OnceLock<Store>>,
    make: Arc<Make>,
}

impl LazyStore {
    /// A store that `make` builds when first asked for.
    pub fn new(make: impl Fn() -> Result<Store, StorageError> + Send + Sync + 'static) -> LazyStore {
        LazyStore { cell: Arc::new(OnceLock::new()), make: Arc::new(make) }
    }

    /// A store that is already built.
    pub fn ready(store: Store) -> LazyStore {
        let cell = OnceLock::new();
        let _ = cell.set(store.clone());
        LazyStore { cell: Arc::new(cell), make: Arc::new(move || Ok(store.clone())) }
    }

    /// The store, built now if it was not yet.
    pub fn get(&self) -> Result<&Store, StorageError> {
        if let Some(s) = self.cell.get() {
            return Ok(s);
        }
        let built = (self.make)()?;
        Ok(self.cell.get_or_init(|| built))
    }

    /// Whether it has been built.
    pub fn is_built(&self) -> bool {
        self.cell.get().is_some()
    }
}

impl std::fmt::Debug for LazyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cell.get() {
            Some(s) => write!(f, "LazyStore({s})"),
            None => f.write_str("LazyStore(not built)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use object_store::memory::InMemory;

    use super::*;

    #[test]
    fn built_once_on_first_use_and_shared_by_clones() {
        let made = Arc::new(AtomicUsize::new(0));
        let counter = made.clone();
        let lazy = LazyStore::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(InMemory::new()) as Store)
        });
        let clone = lazy.clone();
        assert!(!lazy.is_built());
        assert_eq!(made.load(Ordering::SeqCst), 0);
        let a = Arc::as_ptr(lazy.get().unwrap());
        let b = Arc::as_ptr(clone.get().unwrap());
        assert!(std::ptr::addr_eq(a, b));
        assert_eq!(made.load(Ordering::SeqCst), 1);
        let failing = LazyStore::new(|| Err(StorageError::Config("no".into())));
        assert!(failing.get().is_err());
        assert!(!failing.is_built());
    }
}
