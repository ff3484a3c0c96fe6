//! A real Azure Blob emulator for tests: Azurite (npm package `azurite`, which
//! `scripts/install-deps.sh` installs into `.tools/azurite`), started on a free loopback port and
//! stopped by pid. `WALVAULT_TEST_AZURE_ENDPOINT` points tests at an already running one (the
//! test script starts one for the whole run). Each repository gets a container of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine;
use hmac::{KeyInit, Mac};

use super::http;

/// The emulator's account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The emulator's well-known account key (public: Microsoft documents it for Azurite).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob service.
pub struct AzureServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Option<Child>,
    _data: Option<tempfile::TempDir>,
}

fn azurite() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WALVAULT_AZURITE") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/azurite/node_modules/.bin/azurite-blob");
    p.exists().then_some(p)
}

impl AzureServer {
    /// The shared emulator of this test run, or a new one; `None` if Azurite is not installed.
    pub fn start() -> Option<AzureServer> {
        if let Ok(endpoint) = std::env::var("WALVAULT_TEST_AZURE_ENDPOINT") {
            return Some(AzureServer { endpoint, child: None, _data: None });
        }
        let bin = azurite()?;
        let port = super::s3::free_port();
        let data = tempfile::tempdir().ok()?;
        let child = Command::new(bin)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--disableTelemetry",
                "--location",
            ])
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = AzureServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            _data: Some(data),
        };
        http::wait_for(&server.endpoint, &format!("/{ACCOUNT}?comp=list"), "Azurite");
        Some(server)
    }

    /// The blob endpoint of the account (path style, as the emulator serves it).
    pub fn account_url(&self) -> String {
        format!("{}/{ACCOUNT}", self.endpoint)
    }

    /// Creates a container with a Shared Key signed request (object_store cannot create one).
    pub fn create_container(&self, name: &str) {
        let date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .unwrap();
        let version = "2021-08-06";
        let path = format!("/{ACCOUNT}/{name}");
        // VERB, then 11 standard headers (all empty here), then x-ms-* headers and the resource.
        let to_sign = format!(
            "PUT\n{}x-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}{path}\nrestype:container",
            "\n".repeat(11)
        );
        let key = base64::engine::general_purpose::STANDARD.decode(KEY).unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let headers = [
            ("x-ms-date", date.clone()),
            ("x-ms-version", version.to_string()),
            ("Authorization", format!("SharedKey {ACCOUNT}:{sig}")),
        ];
        let (status, body) =
            http::request(&self.endpoint, "PUT", &format!("{path}?restype=container"), &headers, b"")
                .unwrap();
        assert!(
            status == 201,
            "creating container {name}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// walvault's `[storage]` table for the emulator (the account key is the emulator's public one).
pub fn storage_toml(server: &AzureServer) -> String {
    format!(
        "[storage]\nazure_storage_endpoint = \"{}\"\nazure_storage_account_name = \"{ACCOUNT}\"\n\
         azure_storage_account_key = \"{KEY}\"\nazure_allow_http = \"true\"\n",
        server.account_url()
    )
}

impl Drop for AzureServer {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
