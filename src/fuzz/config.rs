//! The configuration file on mutated real ones (every table and most keys): never a panic and
//! bounded memory, whatever the TOML says; the binaries' one-line answers are checked by the
//! configuration sweep (`tests/pg-integration/config_sweep.rs`).

use rand::Rng;
use rand::rngs::StdRng;

use super::mutate::{mutate, run};
use crate::config::{Config, ConfigArgs};

/// Inputs tried per run.
const CASES: u64 = 3000;

const FILE: &str = r#"repo = "s3://bucket/prefix"
compression = "zstd:3"
timeout = "30s"
retries = 3
upload_concurrency = 8
prefetch = 16
part_size = "1GiB"

[storage]
aws_region = "us-east-1"
aws_allow_http = true
aws_secret_access_key = "walvault-fuzz-secret"

[retention]
retain_full = 2
keep_within = "7d"
keep_daily = 7
keep_weekly = 4
keep_monthly = 6
older_than = "24h"
auto = false

[retention.dumps]
retain = 3
keep_within = "30d"

[verify]
reverify_after = "30d"

[notify]
webhook = "https://hooks.example/services/T0/B0/SECRET"
format = "slack"
repeat_after = "15m"
timeout = "5s"

[notify.headers]
Authorization = "Bearer TOKEN"

[status]
max_backup_age = "26h"
max_wal_age = "15m"
min_backups = 1
"#;

#[test]
fn fuzz_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("walvault.toml");
    let bases = vec![FILE.as_bytes().to_vec(), b"repo = \"file:///var/lib/walvault\"\n".to_vec()];
    std::fs::write(&path, FILE).unwrap();
    let args = ConfigArgs { config: Some(path.clone()), ..Default::default() };
    assert!(Config::resolve(&args).is_ok());
    run(
        "config files",
        CASES,
        |len| 64 * len + (1 << 20),
        |rng: &mut StdRng, _| {
            let base = &bases[rng.random_range(0..bases.len())];
            let input = mutate(rng, base, &bases);
            std::fs::write(&path, &input).unwrap();
            let ok = match Config::resolve(&args) {
                Ok(c) => {
                    let _ = c.describe();
                    true
                }
                Err(e) => {
                    let _ = e.to_string();
                    false
                }
            };
            (input.len(), ok)
        },
    );
}
