//! Everything a user deploys is checked: the Kubernetes manifests in `deploy/kubernetes/` against
//! Kubernetes' own JSON schemas (kubernetes-validate, strict, offline), the systemd units in
//! `deploy/systemd/` with `systemd-analyze verify`, and every walvault, wal-push and wal-fetch
//! command line in them run with the built binaries against an empty local repository, each
//! required to get past argument and configuration parsing (no usage error, exit 2) and to do
//! what it can there: archive and fetch a segment, fail to reach the server, find no backup.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::skip_or_fail;
use crate::support::datadir::{SEG_1M, SYSID};
use crate::support::{Run, fake_segment, http};

/// The oldest and newest Kubernetes the manifests are checked against (podFailurePolicy and
/// CronJob timeZone are GA from 1.30).
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// Where an installed unit finds walvault; the test rewrites it to the built binary.
const UNIT_BINARY: &str = "/usr/local/bin/walvault";

/// Paths inside a pod or host that the command-line check moves under its temporary root.
const REMAPPED: [&str; 2] = ["/etc/walvault/", "/var/lib/postgresql/"];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubernetes_dir() -> PathBuf {
    repo_root().join("deploy/kubernetes")
}

fn systemd_dir() -> PathBuf {
    repo_root().join("deploy/systemd")
}

fn validator_bin(name: &str) -> Option<PathBuf> {
    let p = repo_root().join(".tools/kubernetes-validate/bin").join(name);
    p.is_file().then_some(p)
}

/// The files in `dir` whose names end with one of `exts`, sorted.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| exts.iter().any(|x| p.to_string_lossy().ends_with(x)))
        .collect();
    v.sort();
    v
}

/// The manifests (every YAML file but kustomization.yaml).
fn manifests() -> Vec<PathBuf> {
    let v: Vec<PathBuf> = files(&kubernetes_dir(), &[".yaml", ".yml"])
        .into_iter()
        .filter(|p| p.file_name().unwrap() != "kustomization.yaml")
        .collect();
    assert!(!v.is_empty(), "no manifests in {}", kubernetes_dir().display());
    v
}

/// Every YAML document of every file in deploy/kubernetes, as JSON, by file name: read with the
/// PyYAML that kubernetes-validate brings (the tests have no YAML parser of their own).
fn documents(python: &Path) -> BTreeMap<String, Vec<Value>> {
    const SCRIPT: &str = "import json, sys, yaml\n\
        print(json.dumps({f.rsplit('/', 1)[-1]: [d for d in yaml.safe_load_all(open(f)) if d] for f in sys.argv[1:]}))";
    let mut all = manifests();
    all.push(kubernetes_dir().join("kustomization.yaml"));
    let run = Run::of(Command::new(python).arg("-c").arg(SCRIPT).args(&all));
    run.expect(0);
    serde_json::from_str(&run.stdout).expect("documents as JSON")
}

#[test]
fn kubernetes_manifests_pass_strict_schema_validation() {
    let (Some(validate), Some(python)) = (validator_bin("kubernetes-validate"), validator_bin("python"))
    else {
        skip_or_fail!("kubernetes-validate not in .tools/kubernetes-validate (run scripts/install-deps.sh)");
    };
    let docs = documents(&python);
    let expected: usize = docs.iter().filter(|(f, _)| *f != "kustomization.yaml").map(|(_, d)| d.len()).sum();

    // kustomization.yaml (no schema: kubernetes-validate only knows Kubernetes' own kinds) lists
    // existing manifests, and names each one it leaves out (applied by hand).
    let kustomization = &docs["kustomization.yaml"][0];
    assert_eq!(kustomization["kind"], "Kustomization");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let text = std::fs::read_to_string(kubernetes_dir().join("kustomization.yaml")).unwrap();
    for m in manifests() {
        let name = m.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            listed.contains(&name) || text.contains(&name),
            "{name} is neither in kustomization.yaml's resources nor named there as applied by hand"
        );
    }
    for r in &listed {
        assert!(kubernetes_dir().join(r).is_file(), "kustomization.yaml lists {r}, which does not exist");
    }
    // Every image pinned to a release (a minor version or a dated tag), as in the compose file;
    // only walvault's own placeholder may stand for the image the user builds.
    for m in manifests() {
        for line in std::fs::read_to_string(&m).unwrap().lines() {
            let Some(image) =
                line.trim().strip_prefix("image:").or_else(|| line.trim().strip_prefix("- image:"))
            else {
                continue;
            };
            let image = image.split('#').next().unwrap().trim().trim_matches('"');
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            let placeholder = image.starts_with("registry.example.com/walvault:");
            assert!(
                placeholder || (tag.contains('.') && tag != "latest"),
                "{}: image {image} is not pinned to a release",
                m.display()
            );
        }
    }

    for version in KUBERNETES_VERSIONS {
        let run = Run::of(Command::new(&validate).args(["--strict", "-k", version]).args(manifests()));
        println!("kubernetes-validate --strict -k {version}:\n{}", run.stdout);
        // An unknown kind or apiVersion is only a WARN (exit 0) to kubernetes-validate: here it
        // is a failure, like any ERROR.
        let bad: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with("INFO ")).collect();
        assert!(
            run.code == 0 && bad.is_empty(),
            "kubernetes-validate -k {version}:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        let passed = run.stdout.lines().filter(|l| l.contains(" passed for resource ")).count();
        assert_eq!(passed, expected, "every document validated against {version}:\n{}", run.stdout);
    }
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        skip_or_fail!("systemd-analyze (Debian's systemd package) not found");
    }
    let units = files(&systemd_dir(), &[".service", ".timer"]);
    assert!(units.len() >= 3, "units in {}: {units:?}", systemd_dir().display());
    // verify checks that every ExecStart binary exists and is executable: the copies run the
    // built walvault instead of the installed one, with nothing else changed.
    let dir = tempfile::tempdir().unwrap();
    let mut copies = Vec::new();
    for u in &units {
        let text = std::fs::read_to_string(u).unwrap();
        for line in text.lines().filter(|l| l.starts_with("ExecStart")) {
            assert!(
                line.starts_with(&format!("ExecStart={UNIT_BINARY} ")),
                "{}: every ExecStart runs {UNIT_BINARY}: {line}",
                u.display()
            );
        }
        let name = u.file_name().unwrap();
        if let Some(service) = name.to_string_lossy().strip_suffix(".timer") {
            assert!(
                systemd_dir().join(format!("{service}.service")).is_file(),
                "{service}.timer has no service"
            );
        }
        let copy = dir.path().join(name);
        std::fs::write(&copy, text.replace(UNIT_BINARY, env!("CARGO_BIN_EXE_walvault"))).unwrap();
        copies.push(copy);
    }
    let run = Run::of(Command::new("systemd-analyze").arg("verify").args(&copies));
    // verify exits 0 after "Unknown key ..., ignoring" too: any word about these units fails.
    let said: Vec<&str> =
        run.stdout.lines().chain(run.stderr.lines()).filter(|l| l.contains("walvault")).collect();
    assert!(run.code == 0 && said.is_empty(), "systemd-analyze verify:\n{}\n{}", run.stdout, run.stderr);
}

/// One command line found in a manifest or a unit.
#[derive(Debug)]
struct Line {
    /// Where it was found.
    origin: String,
    /// The program and its arguments, as written.
    argv: Vec<String>,
    /// In a pod: the container's mount paths (every file it names must be under one).
    mounts: Option<Vec<String>>,
}

/// What a line does, which decides what it must do against the empty repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Push,
    Fetch,
    BaseBackup,
    Delete,
    Restore,
    StatusListen,
}

impl Line {
    fn program(&self) -> &str {
        self.argv[0].rsplit('/').next().unwrap()
    }

    fn kind(&self) -> Kind {
        let sub = self.argv.get(1).map(String::as_str);
        match (self.program(), sub) {
            ("wal-push", _) | ("walvault", Some("wal-push")) => Kind::Push,
            ("wal-fetch", _) | ("walvault", Some("wal-fetch")) => Kind::Fetch,
            ("walvault", Some("base-backup")) => Kind::BaseBackup,
            ("walvault", Some("delete")) => Kind::Delete,
            ("walvault", Some("restore")) => Kind::Restore,
            ("walvault", Some("status")) if self.argv.iter().any(|a| a.starts_with("--listen")) => {
                Kind::StatusListen
            }
            _ => panic!("{}: no check for this command line: {:?}", self.origin, self.argv),
        }
    }

    fn config(&self) -> &str {
        let i = self.argv.iter().position(|a| a == "--config");
        let path = i.and_then(|i| self.argv.get(i + 1));
        path.unwrap_or_else(|| panic!("{}: every command names its --config: {:?}", self.origin, self.argv))
    }
}

/// The pod specs in a document, with where they are.
fn pod_specs(doc: &Value) -> Option<&Value> {
    match doc["kind"].as_str()? {
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => Some(&doc["spec"]["template"]["spec"]),
        "CronJob" => Some(&doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        "Pod" => Some(&doc["spec"]),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

/// The walvault command lines of every container, and PostgreSQL's archive_command and
/// restore_command from a postgres container's `-c` arguments (run by /bin/sh: split on blanks).
fn kubernetes_lines(docs: &BTreeMap<String, Vec<Value>>) -> Vec<Line> {
    let mut lines = Vec::new();
    for (file, docs) in docs {
        for doc in docs {
            let Some(spec) = pod_specs(doc) else { continue };
            for c in
                ["initContainers", "containers"].iter().flat_map(|k| spec[k].as_array().into_iter().flatten())
            {
                let origin = format!(
                    "{file}: {} {}/{}",
                    doc["kind"].as_str().unwrap_or("?"),
                    doc["metadata"]["name"].as_str().unwrap_or("?"),
                    c["name"].as_str().unwrap_or("?")
                );
                let mounts = c["volumeMounts"].as_array().map(|m| {
                    m.iter().map(|m| m["mountPath"].as_str().unwrap().to_string()).collect::<Vec<_>>()
                });
                let mounts = Some(mounts.unwrap_or_default());
                let argv: Vec<String> =
                    strings(&c["command"]).into_iter().chain(strings(&c["args"])).collect();
                let program = argv.first().map(|p| p.rsplit('/').next().unwrap().to_string());
                if matches!(program.as_deref(), Some("walvault" | "wal-push" | "wal-fetch")) {
                    lines.push(Line { origin: origin.clone(), argv, mounts: mounts.clone() });
                    continue;
                }
                for a in &argv {
                    for setting in ["archive_command=", "restore_command="] {
                        if let Some(cmd) = a.strip_prefix(setting) {
                            lines.push(Line {
                                origin: format!("{origin} {setting}"),
                                argv: cmd.split_whitespace().map(String::from).collect(),
                                mounts: mounts.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    lines
}

/// Splits a systemd command line: words separated by blanks, "double" and 'single' quotes.
fn split_unit_words(s: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for ch in s.chars() {
        match (quote, ch) {
            (None, '"' | '\'') => (quote, any) = (Some(ch), true),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (_, c) => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

fn systemd_lines() -> Vec<Line> {
    let mut lines = Vec::new();
    for u in files(&systemd_dir(), &[".service"]) {
        let text = std::fs::read_to_string(&u).unwrap();
        for l in text.lines() {
            if let Some(cmd) = l.strip_prefix("ExecStart=") {
                let cmd = cmd.trim_start_matches(['-', '@', '+', '!', ':']);
                let origin = format!("{}: ExecStart", u.file_name().unwrap().to_string_lossy());
                lines.push(Line { origin, argv: split_unit_words(cmd), mounts: None });
            }
        }
    }
    lines
}

/// `path` under `root` when it is one of the pod's or host's remapped locations.
fn remap(root: &Path, s: &str) -> String {
    if REMAPPED.iter().any(|p| s.starts_with(p)) {
        root.join(&s[1..]).display().to_string()
    } else {
        s.to_string()
    }
}

fn built(program: &str) -> &'static str {
    match program {
        "walvault" => env!("CARGO_BIN_EXE_walvault"),
        "wal-push" => env!("CARGO_BIN_EXE_wal-push"),
        "wal-fetch" => env!("CARGO_BIN_EXE_wal-fetch"),
        p => panic!("not a walvault binary: {p}"),
    }
}

/// The command for `line`: the built binary, remapped paths, PostgreSQL's placeholders filled
/// in, and an environment that reaches only the temporary repository and no server.
fn command(root: &Path, line: &Line, subst: &[(&str, &str)]) -> Command {
    let mut c = Command::new(built(line.program()));
    for a in &line.argv[1..] {
        let a = subst.iter().find(|(k, _)| k == a).map_or(a.as_str(), |(_, v)| v);
        c.arg(remap(root, a));
    }
    for v in [
        "WALVAULT_CONFIG",
        "WALVAULT_COMPRESSION",
        "WALVAULT_ENCRYPTION_KEY_FILE",
        "WALVAULT_DECRYPTION_KEY_FILES",
        "WALVAULT_TIMEOUT",
        "WALVAULT_RETRIES",
        "WALVAULT_UPLOAD_CONCURRENCY",
        "WALVAULT_PART_SIZE",
        "PGDATA",
        "PGSERVICE",
    ] {
        c.env_remove(v);
    }
    // The variables rank below flags and above the file: the repository is an empty local
    // directory instead of the bucket; no prefetcher is left behind.
    c.env("WALVAULT_REPO", format!("file://{}", root.join("repo").display()))
        .env("WALVAULT_PREFETCH", "0")
        .env("PGHOST", root.join("no-server"))
        .env("PGUSER", "walvault")
        .env("PGCONNECT_TIMEOUT", "2")
        .stdin(Stdio::null());
    c
}

/// Runs `line` to its end: it must not be a usage error, and must exit `code`.
#[track_caller]
fn expect(root: &Path, line: &Line, subst: &[(&str, &str)], cwd: &Path, code: i32, says: &str) -> Run {
    let run = Run::of(command(root, line, subst).current_dir(cwd));
    assert!(
        !run.stderr.contains("(see --help)"),
        "{}: a usage error: {:?}\n{}",
        line.origin,
        line.argv,
        run.stderr
    );
    assert_eq!(
        run.code, code,
        "{}: {:?}\nstdout: {}\nstderr: {}",
        line.origin, line.argv, run.stdout, run.stderr
    );
    assert!(run.stderr.contains(says), "{}: stderr lacks {says:?}:\n{}", line.origin, run.stderr);
    run
}

#[test]
fn deployed_command_lines_parse_and_run() {
    let Some(python) = validator_bin("python") else {
        skip_or_fail!(
            "kubernetes-validate's Python (for PyYAML) not in .tools (run scripts/install-deps.sh)"
        );
    };
    let docs = documents(&python);
    let mut lines = kubernetes_lines(&docs);
    lines.extend(systemd_lines());
    let kinds: BTreeSet<Kind> = lines.iter().map(Line::kind).collect();
    for k in [Kind::Push, Kind::Fetch, Kind::BaseBackup, Kind::Delete, Kind::Restore, Kind::StatusListen] {
        assert!(kinds.contains(&k), "no {k:?} command line found: {lines:#?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("no-server")).unwrap();

    // The ConfigMap's walvault.toml, with its paths moved under root, at every --config path.
    let config_map = docs
        .values()
        .flatten()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "walvault-config");
    let toml_text =
        config_map.expect("the walvault-config ConfigMap")["data"]["walvault.toml"].as_str().unwrap();
    let toml_value: toml::Table = toml_text.parse().expect("walvault.toml is TOML");
    let key_path = toml_value["encryption_key_file"].as_str().expect("encryption_key_file").to_string();
    let remapped_toml =
        REMAPPED.iter().fold(toml_text.to_string(), |t, p| t.replace(p, &format!("{}{p}", root.display())));
    let configs: BTreeSet<&str> = lines.iter().map(Line::config).collect();
    for c in &configs {
        let path = PathBuf::from(remap(root, c));
        assert_ne!(path, PathBuf::from(*c), "--config {c} is not under {REMAPPED:?}");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &remapped_toml).unwrap();
    }
    let key = PathBuf::from(remap(root, &key_path));
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    Run::of(Command::new(built("walvault")).arg("keygen").arg(&key)).expect(0);

    // In a pod, the config file, the key and the binary must be where that container mounts
    // them (or, for the binary, in the image's /usr/local/bin); the config is the ConfigMap's.
    for l in &lines {
        let Some(mounts) = &l.mounts else { continue };
        let under = |p: &str| mounts.iter().any(|m| p.starts_with(&format!("{}/", m.trim_end_matches('/'))));
        assert!(
            under(l.config()),
            "{}: --config {} is not in a mounted volume {mounts:?}",
            l.origin,
            l.config()
        );
        assert!(under(&key_path), "{}: the key {key_path} is not in a mounted volume {mounts:?}", l.origin);
        assert!(
            l.argv[0].starts_with("/usr/local/bin/") || under(&l.argv[0]),
            "{}: {} is neither in the image's /usr/local/bin nor in a mounted volume",
            l.origin,
            l.argv[0]
        );
        assert!(l.config().ends_with("/walvault.toml"), "{}: --config {}", l.origin, l.config());
    }

    // The configuration as each file is read, and the Secret's placeholder key refused.
    for c in &configs {
        Run::of(
            Command::new(built("walvault"))
                .args(["config", "--config", &remap(root, c)])
                .env_remove("WALVAULT_CONFIG"),
        )
        .expect(0);
    }
    let secret = docs
        .values()
        .flatten()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "walvault-secrets");
    let placeholder =
        secret.expect("the walvault-secrets Secret")["stringData"]["encryption.key"].as_str().unwrap();
    let fake = root.join("placeholder.key");
    std::fs::write(&fake, placeholder).unwrap();
    let config = remap(root, configs.first().unwrap());
    Run::of(
        Command::new(built("walvault"))
            .args(["config", "--config", &config, "--encryption-key-file"])
            .arg(&fake)
            .env("WALVAULT_REPO", format!("file://{}", root.join("repo").display())),
    )
    .expect(2)
    .says(&["a key is 32 raw bytes or 64 hex digits"]);

    // archive_command archives a segment into the empty repository; restore_command fetches it.
    let name = "000000010000000000000001";
    let primary = root.join("primary");
    std::fs::create_dir_all(primary.join("pg_wal")).unwrap();
    let segment = fake_segment(name, SYSID, SEG_1M, 1);
    std::fs::write(primary.join("pg_wal").join(name), &segment).unwrap();
    let recovering = root.join("recovering");
    std::fs::create_dir_all(recovering.join("pg_wal")).unwrap();
    let wal_path = format!("pg_wal/{name}");
    let mut sorted: Vec<&Line> = lines.iter().collect();
    sorted.sort_by_key(|l| l.kind());
    for l in sorted {
        println!("{}: {:?}", l.origin, l.argv);
        match l.kind() {
            Kind::Push => {
                expect(root, l, &[("%p", &wal_path)], &primary, 0, "");
            }
            Kind::Fetch => {
                let _ = std::fs::remove_file(recovering.join("pg_wal/RECOVERYXLOG"));
                expect(root, l, &[("%f", name), ("%p", "pg_wal/RECOVERYXLOG")], &recovering, 0, "");
                assert_eq!(
                    std::fs::read(recovering.join("pg_wal/RECOVERYXLOG")).unwrap(),
                    segment,
                    "{}",
                    l.origin
                );
            }
            // Parsed, configured, repository opened: only the server is missing.
            Kind::BaseBackup => {
                expect(root, l, &[], root, 1, "could not connect");
            }
            Kind::Delete => {
                expect(root, l, &[], root, 0, "");
            }
            // Exit 2 here is not a usage error: the target was understood, the repository read,
            // and it has no backup to restore (nothing is written).
            Kind::Restore => {
                expect(root, l, &[], root, 2, "the repository has no base backups");
                let i = l.argv.iter().position(|a| a == "--target-dir").expect("--target-dir");
                assert!(
                    !Path::new(&remap(root, &l.argv[i + 1])).exists(),
                    "{}: a target dir was left",
                    l.origin
                );
            }
            Kind::StatusListen => serves(root, l),
        }
    }
}

/// `status --listen` runs until stopped: it must start serving (on a free loopback port instead
/// of the line's address; clap takes any text there) and answer.
fn serves(root: &Path, line: &Line) {
    let mut line_here = Line { origin: line.origin.clone(), argv: Vec::new(), mounts: None };
    let mut it = line.argv.iter();
    while let Some(a) = it.next() {
        if a == "--listen" {
            it.next().expect("--listen ADDR");
            line_here.argv.extend(["--listen".to_string(), "127.0.0.1:0".to_string()]);
        } else if a.starts_with("--listen=") {
            line_here.argv.push("--listen=127.0.0.1:0".into());
        } else {
            line_here.argv.push(a.clone());
        }
    }
    let mut child = command(root, &line_here, &[]).current_dir(root).stderr(Stdio::piped()).spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut said = String::new();
    let addr = loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => {
                said.push_str(&l);
                said.push('\n');
                if let Some(rest) = l.split("serving /metrics and /health on ").nth(1) {
                    break rest.split(',').next().unwrap().to_string();
                }
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                panic!(
                    "{}: status --listen did not start serving ({status}): {:?}\n{said}",
                    line.origin, line.argv
                );
            }
        }
    };
    let answer = http::request(&format!("http://{addr}"), "GET", "/", &[], b"");
    let health = http::request(&format!("http://{addr}"), "GET", "/health", &[], b"");
    let _ = child.kill();
    child.wait().unwrap();
    assert_eq!(answer.as_ref().map(|a| a.0).ok(), Some(200), "{}: GET / {answer:?}\n{said}", line.origin);
    // No backup in the repository: unhealthy, and /health says so.
    let (code, body) = health.unwrap();
    assert_eq!(code, 503, "{}: /health {}", line.origin, String::from_utf8_lossy(&body));
}
