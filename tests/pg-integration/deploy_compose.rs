//! What a user deploys is checked like code: `docker-compose config` accepts docker-compose.yml
//! (with `.env.example`), both Dockerfiles pass hadolint and the build stage uses
//! rust-toolchain.toml's toolchain, and every command the compose file runs is run here, outside containers, against
//! the same kinds of services: the encryption key's `keygen`, `walvault config`, PostgreSQL with
//! the compose file's settings and archive_command, its healthcheck, the backup service (base
//! backup and retention), the exporter (`status --listen`) and Prometheus with
//! deploy/prometheus/prometheus.yml. No Docker daemon is needed: container paths are mapped to
//! scratch copies of what the compose file mounts there, `/usr/local/bin`'s binaries to the
//! built ones, service names to 127.0.0.1, and the repository to a bucket on the S3 test server.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::skip_or_fail;
use crate::support::pg::{Cluster, pg_bin_for, tail};
use crate::support::repo::Backend;
use crate::support::s3::free_port;
use crate::support::{PG_USER, Run, Scratch, as_pg_user, bins, chown_to_pg};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The uid:gid of PostgreSQL's user in the postgres image, which the compose file runs every
/// walvault container as (and archive_command runs as): here, [`PG_USER`].
const IMAGE_PG_USER: &str = "999:999";

/// The image docker-compose.yml builds from the repository's Dockerfile.
const WALVAULT_IMAGE: &str = "walvault:local";

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `docker-compose --env-file .env.example -f docker-compose.yml config`, its YAML read by
/// python3's yaml module (docker-compose depends on it): `Err` says what is missing.
fn resolved_compose() -> Result<Value, String> {
    let compose = which("docker-compose").ok_or("docker-compose (Debian's package) not found")?;
    // Only PATH and HOME: a variable of the caller's must not stand in for one from .env.example.
    let mut cmd = Command::new(compose);
    cmd.current_dir(ROOT).env_clear().args([
        "--env-file",
        ".env.example",
        "-f",
        "docker-compose.yml",
        "config",
    ]);
    for var in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let run = Run::of(&mut cmd);
    assert_eq!(
        run.code, 0,
        "docker-compose config refused docker-compose.yml:\n{}{}",
        run.stdout, run.stderr
    );
    let mut py = Command::new("python3")
        .args(["-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    std::io::Write::write_all(py.stdin.as_mut().unwrap(), run.stdout.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(format!("python3 with its yaml module: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

macro_rules! require_compose {
    () => {
        match resolved_compose() {
            Ok(c) => c,
            Err(why) => skip_or_fail!("{why}"),
        }
    };
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let services = compose["services"].as_object().expect("services");
    services
        .get(name)
        .unwrap_or_else(|| panic!("no service {name} in docker-compose.yml: {:?}", services.keys()))
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Null => vec![],
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|s| s.as_str().expect("a string").to_string()).collect(),
        other => panic!("not a list of strings: {other}"),
    }
}

/// A service's mounts: (source, target), where the source is an absolute host path (a bind
/// mount) or a volume's name.
fn mounts(svc: &Value) -> Vec<(String, String)> {
    svc["volumes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| match m {
                    Value::String(s) => {
                        let mut parts = s.split(':');
                        (parts.next().unwrap().to_string(), parts.next().expect("a target").to_string())
                    }
                    long => (
                        long["source"].as_str().expect("source").to_string(),
                        long["target"].as_str().expect("target").to_string(),
                    ),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The ENTRYPOINT of the repository's Dockerfile (the walvault image's).
fn dockerfile_entrypoint() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let line = text.lines().rfind(|l| l.starts_with("ENTRYPOINT ")).expect("an ENTRYPOINT in Dockerfile");
    serde_json::from_str(line.trim_start_matches("ENTRYPOINT ")).expect("ENTRYPOINT in exec form")
}

/// The bucket of an `s3://bucket/prefix` URL.
fn bucket(url: &str) -> &str {
    url.trim_start_matches("s3://").split('/').next().unwrap()
}

/// The compose file itself: accepted by docker-compose, every image pinned, and the things that
/// must agree across files agree (the bucket, the user walvault runs as, the mounts); `.env`
/// and the key stay out of git, and `.env.example` holds placeholders only.
#[test]
fn docker_compose_accepts_the_compose_file_and_its_parts_agree() {
    let compose = require_compose!();
    let services = compose["services"].as_object().unwrap();
    for name in
        ["keygen", "walvault-config", "minio", "minio-setup", "postgres", "backup", "exporter", "prometheus"]
    {
        assert!(services.contains_key(name), "no service {name}");
    }
    for (name, svc) in services {
        let image = svc["image"].as_str().unwrap_or_else(|| panic!("{name} has no image"));
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest" && !tag.contains('/'),
            "{name}: image {image} is not pinned"
        );
    }
    // Every walvault container runs as archive_command's user, with the same settings and key.
    let pg = service(&compose, "postgres");
    let pg_mounts = mounts(pg);
    for (name, svc) in services {
        if svc["image"] != WALVAULT_IMAGE || name == "keygen" {
            continue;
        }
        assert_eq!(svc["user"], IMAGE_PG_USER, "{name} must run as the postgres image's user");
        for m in pg_mounts.iter().filter(|(_, t)| t.starts_with("/etc/walvault/")) {
            assert!(mounts(svc).contains(m), "{name} lacks the mount {m:?} that postgres has");
        }
        assert_eq!(svc["environment"]["WALVAULT_CONFIG"], "/etc/walvault/walvault.toml", "{name}");
    }
    // keygen writes the key where the others read it, for the user they run as.
    let keygen = service(&compose, "keygen");
    let secrets =
        pg_mounts.iter().find(|(_, t)| t == "/etc/walvault/secrets").expect("postgres mounts the key");
    let keys = mounts(keygen).into_iter().find(|(s, _)| *s == secrets.0).expect("keygen mounts ./secrets");
    let script = strings(&keygen["command"]).join(" ");
    assert!(
        script.contains(&format!("{}/walvault.key", keys.1)) && script.contains(IMAGE_PG_USER),
        "{script}"
    );
    // One bucket: walvault.toml's repo, the one minio-setup creates, the one its policy allows.
    let toml: toml::Table = std::fs::read_to_string(Path::new(ROOT).join("deploy/docker/walvault.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let b = bucket(toml["repo"].as_str().unwrap());
    let setup = strings(&service(&compose, "minio-setup")["command"]).join("\n");
    assert!(
        setup.contains(&format!("mc mb --ignore-existing local/{b}\n")),
        "minio-setup does not create {b}:\n{setup}"
    );
    let policy =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/docker/minio-walvault-policy.json")).unwrap();
    assert!(
        policy.contains(&format!("arn:aws:s3:::{b}\"")) && policy.contains(&format!("arn:aws:s3:::{b}/*\""))
    );
    // Secrets stay out of git; the example holds placeholders.
    let ignored = std::fs::read_to_string(Path::new(ROOT).join(".gitignore")).unwrap();
    assert!(ignored.lines().any(|l| l == "/.env") && ignored.lines().any(|l| l == "/secrets/"), "{ignored}");
    let example = std::fs::read_to_string(Path::new(ROOT).join(".env.example")).unwrap();
    for line in example.lines().filter(|l| !l.starts_with('#') && l.contains('=')) {
        let (k, v) = line.split_once('=').unwrap();
        assert!(k == "WALVAULT_GIT_REV" || v.starts_with("change-me"), "{line}: not an obvious placeholder");
    }
}

/// Both Dockerfiles pass hadolint (its rules, none ignored but the one justified in the file),
/// and the build stage uses rust-toolchain.toml's toolchain.
#[test]
fn compose_dockerfiles_pass_hadolint_and_pin_the_toolchain() {
    let root = Path::new(ROOT);
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let toolchain: toml::Table =
        std::fs::read_to_string(root.join("rust-toolchain.toml")).unwrap().parse().unwrap();
    let channel = toolchain["toolchain"]["channel"].as_str().unwrap();
    assert!(
        dockerfile.lines().any(|l| l.starts_with(&format!("FROM rust:{channel}-bookworm "))),
        "Dockerfile does not build with rust:{channel}-bookworm (rust-toolchain.toml)"
    );
    let hadolint = root.join(".tools/hadolint/bin/hadolint");
    if !hadolint.exists() {
        skip_or_fail!("hadolint not installed in .tools/hadolint (scripts/install-deps.sh)");
    }
    let run = Run::of(
        Command::new(&hadolint).current_dir(root).args(["Dockerfile", "deploy/docker/Dockerfile.postgres"]),
    );
    assert!(run.code == 0 && run.stdout.trim().is_empty(), "hadolint:\n{}{}", run.stdout, run.stderr);
}

/// A service's view of this host: container paths mapped to scratch copies of what is mounted
/// there, `/usr/local/bin/{wal-push,wal-fetch,walvault}` to the built binaries, and exact words
/// (service names in conninfo, listen addresses) to their loopback equivalents.
struct HostView {
    /// (container path, host path), longest container path first.
    paths: Vec<(String, PathBuf)>,
    words: BTreeMap<String, String>,
}

impl HostView {
    fn path(&self, p: &str) -> Option<String> {
        self.paths.iter().find_map(|(c, h)| {
            let rest = p.strip_prefix(c.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then(|| format!("{}{rest}", h.display()))
        })
    }

    fn word(&self, w: &str) -> String {
        if let Some(m) = self.words.get(w) {
            return m.clone();
        }
        if let Some(m) = self.path(w) {
            return m;
        }
        if let Some((k, v)) = w.split_once('=')
            && let Some(m) = self.path(v)
        {
            return format!("{k}={m}");
        }
        w.to_string()
    }

    /// Maps each whitespace-separated word of `s`.
    fn map(&self, s: &str) -> String {
        s.split_whitespace().map(|w| self.word(w)).collect::<Vec<_>>().join(" ")
    }
}

/// Scratch copies of mount sources, shared by the services that mount the same source: files
/// are copied, directories (and sources that do not exist, which Docker would create as
/// directories) start empty, so that nothing of a developer's own `./secrets` is used; named
/// volumes are scratch directories, unless given (`pgdata` is the cluster's data directory).
struct Mounts<'a> {
    scratch: &'a Scratch,
    copies: BTreeMap<String, PathBuf>,
}

impl<'a> Mounts<'a> {
    fn host(&mut self, source: &str) -> PathBuf {
        if let Some(p) = self.copies.get(source) {
            return p.clone();
        }
        let n = self.copies.len();
        let src = Path::new(source);
        let copy = if src.is_file() {
            let dir = self.scratch.subdir(&format!("mount{n}"));
            let to = dir.join(src.file_name().unwrap());
            std::fs::copy(src, &to).unwrap();
            chown_to_pg(&to);
            to
        } else {
            self.scratch.subdir(&format!("mount{n}"))
        };
        self.copies.insert(source.to_string(), copy.clone());
        copy
    }

    /// `name`'s view: a root directory of its own in which each mount target is a link to the
    /// (shared) copy of its source, so that files mounted side by side stay side by side
    /// (Prometheus reads `rule_files` beside its config file).
    fn view(&mut self, name: &str, svc: &Value, words: &BTreeMap<String, String>) -> HostView {
        let root = self.scratch.subdir(&format!("root-{name}"));
        let mut paths = Vec::new();
        for (source, target) in mounts(svc) {
            let host = self.host(&source);
            let link = root.join(target.trim_start_matches('/'));
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&host, &link).unwrap();
            paths.push((target, link));
        }
        let b = bins();
        for (name, bin) in [("wal-push", &b.push), ("wal-fetch", &b.fetch), ("walvault", &b.walvault)] {
            paths.push((format!("/usr/local/bin/{name}"), bin.clone()));
        }
        paths.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
        HostView { paths, words: words.clone() }
    }
}

/// A service's command line: its entrypoint (walvault's image: the Dockerfile's) and command.
fn argv_of(svc: &Value) -> Vec<String> {
    let mut argv = strings(&svc["entrypoint"]);
    if argv.is_empty() && svc["image"] == WALVAULT_IMAGE {
        argv = dockerfile_entrypoint();
    }
    argv.extend(strings(&svc["command"]));
    argv
}

/// `argv` as this host runs it for `svc`: mapped (a shell script word by word, keeping its
/// lines), with the service's environment (mapped) and `extra_env`, as the service's user.
fn command_of(svc: &Value, view: &HostView, extra_env: &[(&str, String)], argv: &[String]) -> Command {
    let program = match argv[0].as_str() {
        "walvault" => bins().walvault.clone(),
        other => PathBuf::from(view.word(other)),
    };
    let mut cmd = match svc["user"].as_str() {
        Some(IMAGE_PG_USER) => as_pg_user(&program),
        Some("0:0") => Command::new(&program),
        other => panic!("a service runs as {other:?}: map that user here"),
    };
    // A script's `walvault` (keygen's) is the built one.
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", bins().walvault.parent().unwrap().display()));
    for (k, v) in svc["environment"].as_object().into_iter().flatten() {
        cmd.env(k, view.map(v.as_str().expect("a string value")));
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    for arg in &argv[1..] {
        cmd.arg(arg.lines().map(|l| view.map(l)).collect::<Vec<_>>().join("\n"));
    }
    cmd
}

/// A service's own command, as [`command_of`] runs it.
fn run_service(svc: &Value, view: &HostView, extra_env: &[(&str, String)]) -> Command {
    command_of(svc, view, extra_env, &argv_of(svc))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET `url` (`http://host:port/path`): status and body.
fn get(url: &str) -> Option<(u16, String)> {
    let addr = url.trim_start_matches("http://");
    let (host, path) = addr.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((addr, "/".into()));
    let (status, body) =
        crate::support::http::request(&format!("http://{host}"), "GET", &path, &[], b"").ok()?;
    Some((status, dechunk(String::from_utf8_lossy(&body).into_owned())))
}

/// A body as sent, or, when it came chunked (Prometheus's longer answers: hex size, CRLF, data,
/// CRLF, ..., 0), its data.
fn dechunk(body: String) -> String {
    let chunked = !body.starts_with('{')
        && body
            .split_once("\r\n")
            .is_some_and(|(size, _)| !size.is_empty() && size.chars().all(|c| c.is_ascii_hexdigit()));
    if !chunked {
        return body;
    }
    let (mut rest, mut out) = (body.as_str(), String::new());
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size, 16).unwrap_or(0);
        let (Some(data), Some(next)) = (after.get(..n), after.get(n..)) else { break };
        if n == 0 {
            break;
        }
        out.push_str(data);
        rest = next.strip_prefix("\r\n").unwrap_or(next);
    }
    out
}

fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "waited {timeout:?} for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The compose file's commands, in the order its services start, outside containers.
#[test]
fn pg_compose_commands_archive_back_up_and_are_scraped() {
    let compose = require_compose!();
    // The major version of deploy/docker/Dockerfile.postgres (`FROM postgres:17.11-bookworm`).
    let dockerfile =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/docker/Dockerfile.postgres")).unwrap();
    let major: u32 = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM postgres:"))
        .and_then(|tag| tag.split(['.', '-']).next()?.parse().ok())
        .expect("Dockerfile.postgres is FROM postgres:MAJOR...");
    let Some(bin) = pg_bin_for(major) else {
        skip_or_fail!("PostgreSQL {major} server binaries not found (scripts/install-deps.sh)")
    };
    let Some(prometheus) = which("prometheus") else {
        skip_or_fail!("prometheus (Debian's package) not found")
    };
    let scratch = Scratch::new();
    let repo = crate::repo_on!(Backend::S3, &scratch);
    let test_repo: toml::Table =
        std::fs::read_to_string(repo.config(&scratch, "repo.toml", "")).unwrap().parse().unwrap();
    let endpoint = test_repo["storage"]["aws_endpoint"].as_str().unwrap().to_string();
    let mut cluster = Cluster::init(&scratch, "postgres", &bin, &[]);
    let port = cluster.listen_on_tcp();
    let exporter_addr = format!("127.0.0.1:{}", free_port());
    let services = compose["services"].as_object().unwrap();
    let mut words: BTreeMap<String, String> =
        services.keys().map(|name| (format!("host={name}"), "host=127.0.0.1".to_string())).collect();
    words.insert("0.0.0.0:9187".into(), exporter_addr.clone());
    words.insert(IMAGE_PG_USER.into(), {
        let m = std::fs::metadata(scratch.path()).unwrap();
        format!("{}:{}", m.uid(), m.gid())
    });
    let mut mounts = Mounts { scratch: &scratch, copies: BTreeMap::new() };
    // Named volumes: pgdata is the cluster's data directory.
    mounts.copies.insert("pgdata".into(), cluster.data.clone());
    let pg = service(&compose, "postgres");
    let pg_view = mounts.view("postgres", pg, &words);

    // walvault.toml as mounted, pointed at the test's bucket: the repo's bucket and the
    // endpoint are rewritten, and its paths mapped; everything else (key, retention, status)
    // is the compose file's. The credentials come from the services' environment (.env).
    let toml_path = PathBuf::from(pg_view.path("/etc/walvault/walvault.toml").unwrap());
    let mut cfg: toml::Table = std::fs::read_to_string(&toml_path).unwrap().parse().unwrap();
    cfg.insert("repo".into(), test_repo["repo"].clone());
    cfg["storage"].as_table_mut().unwrap().insert("aws_endpoint".into(), endpoint.into());
    let key = cfg["encryption_key_file"].as_str().unwrap().to_string();
    cfg.insert("encryption_key_file".into(), pg_view.map(&key).into());
    std::fs::write(&toml_path, toml::to_string(&cfg).unwrap()).unwrap();
    let test_bucket = bucket(test_repo["repo"].as_str().unwrap()).to_string();

    // keygen: the key, where the other services read it, owned by their user.
    let keygen = service(&compose, "keygen");
    let keygen_view = mounts.view("keygen", keygen, &words);
    Run::of(&mut run_service(keygen, &keygen_view, &[])).expect(0);
    let key_file = PathBuf::from(pg_view.map(&key));
    let meta =
        std::fs::metadata(&key_file).unwrap_or_else(|e| panic!("no key at {}: {e}", key_file.display()));
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), std::fs::metadata(scratch.path()).unwrap().uid(), "the key is not {PG_USER}'s");
    // A second keygen refuses to overwrite it.
    assert_ne!(Run::of(&mut run_service(keygen, &keygen_view, &[])).code, 0, "keygen overwrote the key");

    // walvault-config: the settings resolve, with the key.
    let config = service(&compose, "walvault-config");
    let config_view = mounts.view("walvault-config", config, &words);
    let shown = Run::of(&mut run_service(config, &config_view, &[]));
    shown.expect(0);
    assert!(shown.stdout.contains(&test_bucket) && shown.stdout.contains("key id"), "{}", shown.stdout);

    // postgres: the compose file's -c settings (paths mapped), and the password it sets.
    let argv = strings(&pg["command"]);
    assert_eq!(argv[0], "postgres");
    let settings: Vec<(String, String)> = argv[1..]
        .chunks(2)
        .map(|c| {
            assert_eq!(c[0], "-c", "postgres {argv:?}");
            let (k, v) = c[1].split_once('=').unwrap();
            (k.to_string(), pg_view.map(v))
        })
        .collect();
    let mut all: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.push(("fsync", "off")); // the test's own: speed
    cluster.configure(&all);
    // The container's environment reaches archive_command through the server (the S3
    // credentials).
    let env: Vec<(String, String)> = pg["environment"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), pg_view.map(v.as_str().unwrap())))
        .collect();
    cluster.start_with_env(&env);
    let password = pg["environment"]["POSTGRES_PASSWORD"].as_str().unwrap();
    cluster.sql(&format!("alter user postgres password '{password}'"));
    for (k, v) in &settings {
        if k == "archive_command" {
            assert_eq!(&cluster.sql("show archive_command"), v);
        }
    }
    assert_ne!(cluster.sql("show archive_timeout"), "0", "a quiet server would never archive");
    // Its healthcheck.
    let health = strings(&pg["healthcheck"]["test"]);
    assert_eq!(health[0], "CMD");
    Run::of(cluster.client(&health[1]).args(health[2..].iter().map(|a| pg_view.map(a)))).expect(0);
    // archive_command archives: a switched segment arrives in the repository.
    cluster.sql("create table t as select generate_series(1, 1000) i");
    let segment = cluster.sql("select pg_walfile_name(pg_current_wal_lsn())");
    cluster.sql("select pg_switch_wal()");
    let wal_key = format!("wal/{}/{segment}", &segment[..16]);
    let start = Instant::now();
    while !repo.keys().contains(&wal_key) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{wal_key} never arrived: archive_command does not archive\n{}",
            tail(&cluster.log_text(), 30)
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // backup: a base backup over TCP with the password, then the retention policy.
    let pgport = [("PGPORT", port.to_string())];
    let backup = service(&compose, "backup");
    let backup_view = mounts.view("backup", backup, &words);
    let run = Run::of(&mut run_service(backup, &backup_view, &pgport));
    run.expect(0);
    run.says(&["applying the retention policy"]);
    // `walvault list` as the backup service would run it.
    let list_argv = ["walvault", "list", "--json"].map(String::from);
    let list = Run::of(&mut command_of(backup, &backup_view, &pgport, &list_argv));
    list.expect(0);
    let listing: Value = serde_json::from_str(&list.stdout).unwrap();
    let backups = listing["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 1, "{listing:#}");
    assert_eq!(backups[0]["consistent_wal"], true, "{listing:#}");
    assert!(!backups[0]["kept_by"].as_array().unwrap().is_empty(), "the policy keeps it: {listing:#}");

    // exporter: /metrics and /health, with the server and this host's counters.
    let exporter = service(&compose, "exporter");
    let exporter_view = mounts.view("exporter", exporter, &words);
    let log = scratch.path().join("exporter.log");
    let mut cmd = run_service(exporter, &exporter_view, &pgport);
    // Never on every interface here: the listen address must be the one mapped to loopback.
    assert!(
        cmd.get_args().any(|a| a == exporter_addr.as_str()),
        "the exporter does not listen on 0.0.0.0:9187 (what prometheus.yml scrapes): {cmd:?}"
    );
    let _exporter =
        Killed(cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap());
    let metrics = wait_until("the exporter's /metrics", Duration::from_secs(30), || {
        get(&format!("http://{exporter_addr}/metrics"))
            .filter(|(c, b)| *c == 200 && b.contains("walvault_up"))
            .map(|r| r.1)
    });
    let exporter_log = || std::fs::read_to_string(&log).unwrap_or_default();
    for line in ["walvault_up 1", "walvault_backups 1", "walvault_server_up 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing:\n{metrics}\n{}", exporter_log());
    }
    assert!(
        metrics.lines().any(|l| l.starts_with("walvault_archive_files_total ") && !l.ends_with(" 0")),
        "no archive_command calls counted (--pgdata):\n{metrics}"
    );
    let (code, body) = get(&format!("http://{exporter_addr}/health")).unwrap();
    assert_eq!(code, 200, "a fresh stack is unhealthy under walvault.toml's [status]: {body}");

    // prometheus: deploy/prometheus/prometheus.yml with only the target rewritten.
    let prom = service(&compose, "prometheus");
    let prom_view = mounts.view("prometheus", prom, &words);
    let prom_yml = PathBuf::from(prom_view.path("/etc/prometheus/prometheus.yml").unwrap());
    let text = std::fs::read_to_string(&prom_yml).unwrap();
    assert_eq!(text.matches("\"exporter:9187\"").count(), 1, "{text}");
    std::fs::write(&prom_yml, text.replace("\"exporter:9187\"", &format!("\"{exporter_addr}\""))).unwrap();
    let prom_port = free_port();
    let prom_log = scratch.path().join("prometheus.log");
    let mut cmd = Command::new(prometheus);
    cmd.args(strings(&prom["command"]).iter().map(|a| prom_view.word(a)))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&prom_log).unwrap());
    let _prometheus = Killed(cmd.spawn().unwrap());
    let api = |q: &str| -> Option<Value> {
        let (code, body) = get(&format!("http://127.0.0.1:{prom_port}/api/v1/{q}"))?;
        (code == 200).then(|| serde_json::from_str(&body).ok())?
    };
    let prom_said = || std::fs::read_to_string(&prom_log).unwrap_or_default();
    let alerts = std::fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/alerts.yml")).unwrap();
    let defined: Vec<String> =
        alerts.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).map(str::to_string).collect();
    assert!(!defined.is_empty());
    let start = Instant::now();
    loop {
        let rules = api("rules").unwrap_or_default();
        let loaded: Vec<String> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect();
        if loaded == defined {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the alert rules are not loaded: {loaded:?}, not {defined:?}\n{}",
            prom_said()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let start = Instant::now();
    let target = loop {
        let t =
            api("targets").and_then(|v| v["data"]["activeTargets"].as_array().cloned()).unwrap_or_default();
        if let Some(up) = t.iter().find(|t| t["health"] == "up") {
            break up.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "the exporter never was up for Prometheus: {t:?}\n{}",
            prom_said()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(target["scrapeUrl"].as_str().unwrap().contains(&exporter_addr), "{target}");
    let sample = wait_until("walvault_backups in Prometheus", Duration::from_secs(20), || {
        api("query?query=walvault_backups")
            .and_then(|v| v["data"]["result"][0]["value"][1].as_str().map(str::to_string))
    });
    assert_eq!(sample, "1");
    cluster.stop();
}
