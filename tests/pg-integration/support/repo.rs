//! Test repositories on every backend walvault supports (a local directory, a bucket on the
//! S3-compatible server, a container on the Azure emulator, a bucket on the GCS emulator), their
//! walvault config files, and listings of what they hold.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;

use super::Scratch;
use super::azure::AzureServer;
use super::gcs::GcsServer;
use super::s3::S3Server;

/// Which kind of repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `file://`.
    File,
    /// `s3://` on the test server.
    S3,
    /// `az://` on the Azure emulator.
    Azure,
    /// `gs://` on the GCS emulator (reads only: see `support::gcs`).
    Gcs,
}

impl Backend {
    /// The backend a lower-case test name stands for (`file`, `s3`, `azure`, `gcs`).
    pub fn named(name: &str) -> Backend {
        match name {
            "file" => Backend::File,
            "s3" => Backend::S3,
            "azure" => Backend::Azure,
            "gcs" => Backend::Gcs,
            other => panic!("no backend {other}"),
        }
    }
}

/// The server a repository lives on, kept alive as long as the repository.
enum Server {
    None,
    S3(#[allow(dead_code)] S3Server),
    Azure(#[allow(dead_code)] AzureServer),
    Gcs(GcsServer, String),
}

/// A repository for one test.
pub struct Repo {
    top: String,
    storage: String,
    store: Arc<dyn ObjectStore>,
    server: Server,
    /// The key prefix inside the bucket or container.
    prefix: String,
}

impl Repo {
    /// A fresh repository on `backend`, its server started or found; `Err` says what is missing.
    /// Use [`crate::repo_on!`], which skips loudly (fails under CI) on `Err`.
    pub fn on(backend: Backend, scratch: &Scratch) -> Result<Repo, String> {
        match backend {
            Backend::File => Ok(Repo::file(scratch)),
            Backend::S3 => {
                let server = S3Server::start().ok_or("no S3-compatible server (moto) available")?;
                let mut r = Repo::s3(&server);
                r.server = Server::S3(server);
                Ok(r)
            }
            Backend::Azure => {
                let server = AzureServer::start().ok_or("no Azure Blob emulator (Azurite) available")?;
                Ok(Repo::azure(server))
            }
            Backend::Gcs => {
                let server = GcsServer::start().ok_or("no GCS emulator (fake-gcs-server) available")?;
                Ok(Repo::gcs(server))
            }
        }
    }

    /// A fresh `file://` repository inside `scratch`, writable by PostgreSQL's user.
    pub fn file(scratch: &Scratch) -> Repo {
        let parent = scratch.subdir("repos");
        let dir = parent.join(super::unique("r"));
        std::fs::create_dir_all(&dir).unwrap();
        super::chown_to_pg(&dir);
        let store = Arc::new(LocalFileSystem::new_with_prefix(&dir).unwrap());
        Repo {
            top: format!("repo = \"file://{}\"\n", dir.display()),
            storage: String::new(),
            store,
            server: Server::None,
            prefix: String::new(),
        }
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
            server: Server::None,
            prefix: prefix.to_string(),
        }
    }

    /// A fresh container and prefix on the Azure emulator.
    fn azure(server: AzureServer) -> Repo {
        let container = super::unique("c");
        server.create_container(&container);
        let prefix = "pfx/one";
        let store = MicrosoftAzureBuilder::new()
            .with_endpoint(server.account_url())
            .with_account(super::azure::ACCOUNT)
            .with_access_key(super::azure::KEY)
            .with_allow_http(true)
            .with_container_name(&container)
            .build()
            .unwrap();
        Repo {
            top: format!("repo = \"az://{container}/{prefix}\"\n"),
            storage: super::azure::storage_toml(&server),
            store: Arc::new(PrefixStore::new(store, prefix)),
            server: Server::Azure(server),
            prefix: prefix.to_string(),
        }
    }

    /// A fresh bucket and prefix on the GCS emulator.
    fn gcs(server: GcsServer) -> Repo {
        let bucket = super::unique("g");
        server.create_bucket(&bucket);
        let prefix = "pfx/one";
        let store = GoogleCloudStorageBuilder::new()
            .with_service_account_path(server.service_account().to_string_lossy())
            .with_bucket_name(&bucket)
            .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
            .build()
            .unwrap();
        Repo {
            top: format!("repo = \"gs://{bucket}/{prefix}\"\n"),
            storage: super::gcs::storage_toml(&server),
            store: Arc::new(PrefixStore::new(store, prefix)),
            server: Server::Gcs(server, bucket),
            prefix: prefix.to_string(),
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

    /// Every key in the repository (a listing only, no reads).
    pub fn keys(&self) -> Vec<String> {
        rt().block_on(async {
            let metas: Vec<_> = self.store.list(None).try_collect().await.unwrap();
            let mut keys: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
            keys.sort();
            keys
        })
    }

    /// Deletes one object behind walvault's back.
    pub fn delete(&self, key: &str) {
        rt().block_on(async {
            let p = object_store::path::Path::from(key);
            object_store::ObjectStoreExt::delete(self.store.as_ref(), &p).await.unwrap();
        });
    }

    /// The directory of a `file://` repository (`None` on the other backends).
    pub fn dir(&self) -> Option<std::path::PathBuf> {
        let url = self.top.trim().strip_prefix("repo = \"file://")?.strip_suffix('"')?;
        Some(std::path::PathBuf::from(url))
    }

    /// The bucket or container of a cloud repository (its URL's host part).
    pub fn bucket(&self) -> String {
        let url = self.top.trim().strip_prefix("repo = \"").unwrap().trim_end_matches('"');
        url.split("://").nth(1).unwrap().split('/').next().unwrap().to_string()
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

    /// The keys of the parts of backup `id`'s first archive (the base tar), from its descriptor.
    pub fn part_keys(&self, id: &str) -> Vec<String> {
        let desc: serde_json::Value =
            serde_json::from_slice(&self.get(&format!("backups/{id}.json"))).unwrap();
        desc["archives"][0]["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["key"].as_str().unwrap().to_string())
            .collect()
    }

    /// Replaces one object (to simulate corruption behind walvault's back), or writes a new one.
    pub fn overwrite(&self, key: &str, bytes: Vec<u8>) {
        if let Server::Gcs(server, bucket) = &self.server {
            return server.seed(bucket, &format!("{}/{key}", self.prefix), &bytes);
        }
        rt().block_on(async {
            let p = object_store::path::Path::from(key);
            object_store::ObjectStoreExt::put(self.store.as_ref(), &p, bytes.into()).await.unwrap();
        });
    }
}

/// A fresh repository on `backend`, or a loud skip (a failure under `CI=true`) when its server
/// is missing.
#[macro_export]
macro_rules! repo_on {
    ($backend:expr, $scratch:expr) => {
        match $crate::support::repo::Repo::on($backend, $scratch) {
            Ok(repo) => repo,
            Err(why) => $crate::skip_or_fail!("{why}"),
        }
    };
}

/// One test per backend: `on_backends!(name, body, [file, s3, azure])` makes the tests
/// `name::file`, `name::s3`, `name::azure`, each calling `body(Backend::…)` (`body` is a function
/// of the calling module, or a closure like `|b| pitr(b, true)`).
#[macro_export]
macro_rules! on_backends {
    ($name:ident, $body:expr, [$($backend:ident),+ $(,)?]) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $backend() {
                    ($body)($crate::support::repo::Backend::named(stringify!($backend)));
                }
            )+
        }
    };
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}
