//! Test repositories on both backends (a local directory, a bucket on the S3-compatible server),
//! their walvault config files, and listings of what they hold.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;

use super::Scratch;
use super::s3::S3Server;

/// Which kind of repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `file://`.
    File,
    /// `s3://` on the test server.
    S3,
}

/// A repository for one test.
pub struct Repo {
    top: String,
    storage: String,
    store: Arc<dyn ObjectStore>,
}

impl Repo {
    /// A fresh `file://` repository inside `scratch`, writable by PostgreSQL's user.
    pub fn file(scratch: &Scratch) -> Repo {
        let parent = scratch.subdir("repos");
        let dir = parent.join(super::unique("r"));
        std::fs::create_dir_all(&dir).unwrap();
        super::chown_to_pg(&dir);
        let store = Arc::new(LocalFileSystem::new_with_prefix(&dir).unwrap());
        Repo { top: format!("repo = \"file://{}\"\n", dir.display()), storage: String::new(), store }
    }

    /// A fresh bucket and prefix on `server`.
    pub fn s3(server: &S3Server) -> Repo {
        let bucket = super::unique("b");
        server.create_bucket(&bucket);
        let prefix = "pfx/one";
        let store = AmazonS3Builder::new()
            .with_endpoint(&server.endpoint)
            .with_allow_http(true)
            .with_bucket_name(&bucket)
            .with_access_key_id("walvault-test")
            .with_secret_access_key("walvault-test-secret")
            .with_region("us-east-1")
            .build()
            .unwrap();
        Repo {
            top: format!("repo = \"s3://{bucket}/{prefix}\"\n"),
            storage: format!(
                "[storage]\naws_endpoint = \"{}\"\naws_allow_http = \"true\"\naws_access_key_id = \"walvault-test\"\n\
                 aws_secret_access_key = \"walvault-test-secret\"\naws_region = \"us-east-1\"\n",
                server.endpoint
            ),
            store: Arc::new(PrefixStore::new(store, prefix)),
        }
    }

    /// Either backend.
    pub fn new(backend: Backend, scratch: &Scratch, server: Option<&S3Server>) -> Repo {
        match backend {
            Backend::File => Repo::file(scratch),
            Backend::S3 => Repo::s3(server.expect("an S3 server for an S3 repository")),
        }
    }

    /// Writes a config file for this repository with extra top-level lines (compression, keys).
    pub fn config(&self, scratch: &Scratch, name: &str, extra: &str) -> PathBuf {
        scratch.file(name, format!("{}{extra}\n{}", self.top, self.storage))
    }

    /// Every object in the repository with its size and contents' SHA-256.
    pub fn listing(&self) -> BTreeMap<String, (u64, String)> {
        use sha2::Digest;
        rt().block_on(async {
            let metas: Vec<_> = self.store.list(None).try_collect().await.unwrap();
            let mut out = BTreeMap::new();
            for m in metas {
                let bytes = object_store::ObjectStoreExt::get(self.store.as_ref(), &m.location)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                out.insert(m.location.to_string(), (m.size, hex::encode(sha2::Sha256::digest(&bytes))));
            }
            out
        })
    }

    /// Reads one object.
    pub fn get(&self, key: &str) -> Vec<u8> {
        rt().block_on(async {
            let p = object_store::path::Path::from(key);
            object_store::ObjectStoreExt::get(self.store.as_ref(), &p)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec()
        })
    }

    /// Replaces one object (to simulate corruption behind walvault's back).
    pub fn overwrite(&self, key: &str, bytes: Vec<u8>) {
        rt().block_on(async {
            let p = object_store::path::Path::from(key);
            object_store::ObjectStoreExt::put(self.store.as_ref(), &p, bytes.into()).await.unwrap();
        });
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}
