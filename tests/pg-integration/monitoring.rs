//! Knowing without reading logs: the counters wal-push and wal-fetch keep (concurrent calls lose
//! no count), `walvault status` (thresholds, JSON, Prometheus's format checked by `promtool`),
//! `status --listen` scraped by a real Prometheus, `walvault check`, and webhook alerts (every
//! event's payload, the rate limit, the redaction of the URL and of header values).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::skip_or_fail;
use crate::support::backups::{archive_everything, archiving, base_backup, configure, walvault};
use crate::support::datadir::{DataDir, SEG_1M, SYSID, extra};
use crate::support::pg::{Cluster, pg_bin};
use crate::support::receiver::Receiver;
use crate::support::repo::Repo;
use crate::support::s3::{free_port, s3_toml};
use crate::support::{Run, Scratch, bins, fake_segment};

fn stats(data: &DataDir) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data.path.join("pg_wal/.walvault/stats.json")).unwrap()).unwrap()
}

#[test]
fn calls_are_counted_and_concurrent_calls_lose_no_count() {
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(
        &scratch,
        "c.toml",
        &format!("{}upload_concurrency = 1\nprefetch = 0\n", extra("lz4", None)),
    );
    let data = DataDir::new(&scratch);
    let names: Vec<String> = (1..=16).map(|i| format!("0000000100000000{i:08X}")).collect();
    for (i, n) in names.iter().enumerate() {
        data.wal(n, &fake_segment(n, SYSID, SEG_1M, i as u64));
    }
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            data.push_cmd(&cfg, &[&format!("pg_wal/{n}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let s = stats(&data);
    assert_eq!(s["push"]["calls"], 16, "{s:#}");
    assert_eq!(s["push"]["files"], 16);
    assert_eq!(s["push"]["raw_bytes"], 16 * u64::from(SEG_1M));
    assert!(s["push"]["stored_bytes"].as_u64().unwrap() > 0);
    assert!(s["push"]["seconds_total"].as_f64().unwrap() > 0.0);
    // Again: each is already archived.
    data.push(&cfg, &format!("pg_wal/{}", names[0])).expect(0);
    assert_eq!(stats(&data)["push"]["already"], 1);
    // Fetches, in parallel, into a data directory of their own; and one that is not there.
    let target = DataDir::new(&scratch);
    let fetches: Vec<_> = names
        .iter()
        .map(|n| {
            Command::new(&bins().fetch)
                .current_dir(&target.path)
                .arg("--config")
                .arg(&cfg)
                .args([n.as_str(), &format!("pg_wal/{n}.restored")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in fetches {
        assert!(c.wait().unwrap().success());
    }
    let (run, _) = target.fetch(&cfg, "000000010000000000000099");
    run.expect(1);
    let t = stats(&target);
    assert_eq!(
        (t["fetch"]["calls"].as_u64(), t["fetch"]["files"].as_u64(), t["fetch"]["already"].as_u64()),
        (Some(17), Some(16), Some(1)),
        "{t:#}"
    );
    // A failure is counted by kind, with its message.
    let dead = scratch.file(
        "dead.toml",
        format!(
            "timeout = \"1s\"\nretries = 0\n{}",
            s3_toml(&format!("http://127.0.0.1:{}", free_port()), "b", "p")
        ),
    );
    let n = "000000010000000000000030";
    data.push(&dead, &data.wal(n, &fake_segment(n, SYSID, SEG_1M, 30))).expect(1);
    let s = stats(&data);
    assert_eq!(s["push"]["failures"]["storage"], 1, "{s:#}");
    assert_eq!(s["push"]["last_failure"]["file"], n);
    assert!(!s["push"]["last_failure"]["message"].as_str().unwrap().is_empty());
    assert!(s["push"]["last_failure"]["message"].as_str().unwrap().contains("walvault.json"));
    assert!(!s.to_string().contains("walvault-test-secret"));
    // A backlog: the background pusher's uploads are counted apart.
    let cfg4 = repo.config(&scratch, "c4.toml", &format!("{}upload_concurrency = 4\n", extra("lz4", None)));
    let backlog = DataDir::new(&scratch);
    let more: Vec<String> = (0x40..0x48).map(|i| format!("0000000100000000{i:08X}")).collect();
    for (i, m) in more.iter().enumerate() {
        backlog.wal(m, &fake_segment(m, SYSID, SEG_1M, 100 + i as u64));
        std::fs::create_dir_all(backlog.path.join("pg_wal/archive_status")).unwrap();
        std::fs::write(backlog.path.join(format!("pg_wal/archive_status/{m}.ready")), b"").unwrap();
    }
    backlog.push(&cfg4, &format!("pg_wal/{}", more[0])).expect(0);
    let start = Instant::now();
    while stats(&backlog)["pusher"]["files"].as_u64().unwrap_or(0) < 7
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let b = stats(&backlog);
    assert_eq!(b["pusher"]["files"], 7, "{b:#}");
    assert_eq!(b["ready_backlog"], 8, "the .ready files when the call looked");
}

/// A primary archiving into a fresh S3 repository, with a first backup.
fn primary_with_backup(
    scratch: &Scratch,
    repo: &Repo,
    bin: &Path,
    extra_cfg: &str,
) -> (Cluster, std::path::PathBuf) {
    let cfg = repo.config(scratch, "walvault.toml", &format!("{}{extra_cfg}", extra("lz4", None)));
    let mut p = Cluster::init(scratch, "primary", bin, &[]);
    configure(&p, &archiving(&cfg));
    p.start();
    p.sql("create table t (i int)");
    base_backup(&cfg, &p);
    archive_everything(&p);
    (p, cfg)
}

fn conninfo(p: &Cluster) -> String {
    format!("host={} port={} user=postgres dbname=postgres", p.sock.display(), p.port)
}

fn promtool_check_metrics(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n{text}");
}

fn have_promtool() -> bool {
    Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn pg_status_thresholds_json_and_prometheus_format() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    if !have_promtool() {
        skip_or_fail!("promtool (Debian's prometheus package) not found");
    }
    let scratch = Scratch::new();
    let repo = crate::repo_on!(crate::support::repo::Backend::S3, &scratch);
    let (mut p, cfg) = primary_with_backup(&scratch, &repo, &bin, "");
    let cache = scratch.path().join("status-cache.json");
    let cache_arg = cache.to_string_lossy().into_owned();
    let pgdata = p.data.to_string_lossy().into_owned();
    let status = |cfg: &Path, args: &[&str]| {
        let mut all = vec!["status", "--cache", &cache_arg, "--pgdata", &pgdata];
        all.extend_from_slice(args);
        Run::of(walvault(cfg).args(&all))
    };
    let run = status(&cfg, &["--json", "-d", &conninfo(&p)]);
    run.expect(0);
    let s: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(s["repo"]["backups"], 1, "{s:#}");
    assert!(s["repo"]["newest_backup"]["age_seconds"].as_i64().unwrap() < 600);
    assert!(s["repo"]["newest_wal"].as_str().is_some());
    assert!(s["repo"]["wal_objects"].as_u64().unwrap() >= 2);
    assert!(s["host"]["stats"]["push"]["files"].as_u64().unwrap() >= 2, "the archiver's calls were counted");
    assert_eq!(s["server"]["error"], serde_json::Value::Null, "{s:#}");
    assert!(s["server"]["archived_count"].as_u64().unwrap() >= 2);
    assert_eq!(s["server"]["rpo_bytes"].as_u64().map(|b| b < 16 << 20), Some(true), "{s:#}");
    assert_eq!(s["health"]["healthy"], true);
    // A second status lists only the newest WAL folder again (from the cache).
    let again: serde_json::Value = serde_json::from_str(&status(&cfg, &["--json"]).expect(0).stdout).unwrap();
    assert!(again["repo"]["folders_listed"].as_u64().unwrap() <= 2, "{again:#}");
    // Prometheus's format, as promtool reads it.
    let prom = status(&cfg, &["--prometheus", "-d", &conninfo(&p)]).expect(0).stdout.clone();
    promtool_check_metrics(&prom);
    for name in [
        "walvault_backups 1",
        "walvault_up 1",
        "walvault_healthy 1",
        "walvault_rpo_bytes",
        "walvault_archive_files_total",
    ] {
        assert!(prom.contains(name), "{name} missing:\n{prom}");
    }
    // Thresholds: crossed ones make it exit 3 with every reason.
    let strict = scratch.file(
        "strict.toml",
        format!(
            "{}\n[status]\nmin_backups = 3\nmax_backup_age = \"1s\"\n",
            std::fs::read_to_string(&cfg).unwrap()
        ),
    );
    std::thread::sleep(Duration::from_secs(2));
    let run = status(&strict, &[]);
    run.expect(3);
    assert!(run.stdout.contains("UNHEALTHY: 1 backup(s), fewer than min_backups = 3"), "{}", run.stdout);
    assert!(run.stdout.contains("max_backup_age = 1s"), "{}", run.stdout);
    run.says(&["unhealthy"]);
    // No WAL archived for a while: max_wal_age (the RPO) is crossed.
    let rpo = scratch.file(
        "rpo.toml",
        format!("{}\n[status]\nmax_wal_age = \"1s\"\n", std::fs::read_to_string(&cfg).unwrap()),
    );
    p.sql("insert into t values (1)");
    std::thread::sleep(Duration::from_secs(2));
    status(&rpo, &["-d", &conninfo(&p)]).expect(3).says(&["max_wal_age = 1s"]);
    p.stop();
}

/// Waits until `url` answers; returns the body.
fn get(url: &str) -> Option<(u16, String)> {
    let addr = url.trim_start_matches("http://");
    let (host, path) = addr.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((addr, "/".into()));
    let (status, body) =
        crate::support::http::request(&format!("http://{host}"), "GET", &path, &[], b"").ok()?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pg_status_listen_is_scraped_by_prometheus() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let Ok(prometheus) = which("prometheus") else {
        skip_or_fail!("prometheus (Debian's package) not found")
    };
    let scratch = Scratch::new();
    let repo = crate::repo_on!(crate::support::repo::Backend::S3, &scratch);
    let (mut p, cfg) = primary_with_backup(&scratch, &repo, &bin, "");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let two = scratch
        .file("two.toml", format!("{}\n[status]\nmin_backups = 2\n", std::fs::read_to_string(&cfg).unwrap()));
    let _listen = Killed(
        walvault(&two)
            .args(["status", "--listen", &addr, "--refresh", "1s", "--pgdata"])
            .arg(&p.data)
            .args(["-d", &conninfo(&p)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let metrics = loop {
        if let Some((200, body)) = get(&format!("http://{addr}/metrics")) {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "status --listen never served /metrics");
        std::thread::sleep(Duration::from_millis(200));
    };
    promtool_check_metrics(&metrics);
    let (code, health) = get(&format!("http://{addr}/health")).unwrap();
    assert_eq!(code, 503, "{health}");
    assert!(health.contains("fewer than min_backups = 2"), "{health}");
    assert_eq!(get(&format!("http://{addr}/nothing")).unwrap().0, 404);
    // Prometheus itself scrapes it; the series come back through its HTTP API.
    let prom_port = free_port();
    let prom_dir = scratch.subdir("prometheus");
    let conf = prom_dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: walvault\n    static_configs:\n      - targets: ['{addr}']\n"),
    )
    .unwrap();
    let _prom = Killed(
        Command::new(prometheus)
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!("--storage.tsdb.path={}", prom_dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let query = |q: &str| -> Option<serde_json::Value> {
        let (code, body) = get(&format!("http://127.0.0.1:{prom_port}/api/v1/query?query={q}"))?;
        (code == 200).then(|| serde_json::from_str(&body).ok())?
    };
    let start = Instant::now();
    let value = loop {
        let v = query("walvault_backups")
            .and_then(|v| v["data"]["result"][0]["value"][1].as_str().map(str::to_string));
        if let Some(v) = v {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "Prometheus never had walvault_backups");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(value, "1");
    for series in ["walvault_up", "walvault_archive_files_total", "walvault_rpo_seconds", "walvault_healthy"]
    {
        let v = query(series).unwrap();
        assert!(!v["data"]["result"].as_array().unwrap().is_empty(), "{series} not in Prometheus: {v}");
    }
    let healthy = query("walvault_healthy").unwrap();
    assert_eq!(healthy["data"]["result"][0]["value"][1], "0");
    // A second backup meets min_backups: /health turns 200 at the next refresh.
    base_backup(&cfg, &p);
    let start = Instant::now();
    while get(&format!("http://{addr}/health")).map(|r| r.0) != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(30), "health never recovered");
        std::thread::sleep(Duration::from_millis(200));
    }
    p.stop();
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn pg_check_proves_archiving_and_names_what_to_fix() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let scratch = Scratch::new();
    let repo = crate::repo_on!(crate::support::repo::Backend::S3, &scratch);
    let (mut p, cfg) = primary_with_backup(&scratch, &repo, &bin, "");
    let run = Run::of(walvault(&cfg).args(["check", "-d", &conninfo(&p)]));
    run.expect(0);
    for line in [
        "ok   wal_level",
        "ok   archive_mode",
        "ok   archive_command",
        "ok   system_identifier",
        "ok   key",
        "ok   archiving",
        "archiving works",
    ] {
        assert!(run.stdout.contains(line), "{line:?} not in:\n{}", run.stdout);
    }
    let json: serde_json::Value = serde_json::from_str(
        &Run::of(walvault(&cfg).args(["check", "--json", "-d", &conninfo(&p)])).expect(0).stdout,
    )
    .unwrap();
    assert_eq!(json["ok"], true);
    // Another repository than the one archive_command archives into.
    let other = Repo::file(&scratch);
    let other_cfg = other.config(&scratch, "other.toml", "");
    let run = Run::of(walvault(&other_cfg).args(["check", "--wait", "3s", "-d", &conninfo(&p)]));
    run.expect(3);
    assert!(
        run.stdout.contains("FAIL archive_command") && run.stdout.contains("not file://"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("FAIL archiving") && run.stdout.contains("fix:"), "{}", run.stdout);
    // archive_command that does not run walvault.
    p.sql("alter system set archive_command = '/bin/true'");
    p.sql("select pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(500));
    let run = Run::of(walvault(&cfg).args(["check", "--wait", "3s", "-d", &conninfo(&p)]));
    run.expect(3);
    assert!(run.stdout.contains("does not run walvault's wal-push"), "{}", run.stdout);
    assert!(run.stdout.contains("fix: set archive_command = "), "{}", run.stdout);
    assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
    p.stop();
}

#[test]
fn pg_alerts_reach_the_webhook_rate_limited_and_redacted() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let hook = Receiver::start();
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let notify = format!(
        "\n[notify]\nwebhook = \"{}/services/T0/B0/SECRET-PATH\"\nrepeat_after = \"1h\"\n[notify.headers]\nAuthorization = \"Bearer TOKEN-XYZ\"\n",
        hook.url
    );
    let cfg = repo.config(&scratch, "walvault.toml", &format!("{}{notify}", extra("lz4", None)));
    let secret = |text: &str| text.contains("TOKEN-XYZ") || text.contains("SECRET-PATH");
    let mut p = Cluster::init(&scratch, "primary", &bin, &[]);
    configure(&p, &archiving(&cfg));
    p.start();
    // base-backup succeeded, and failed.
    let id = base_backup(&cfg, &p);
    let ok = hook.wait_for("backup_succeeded", 1, Duration::from_secs(10));
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["id"], id.as_str());
    assert_eq!(ok[0]["severity"], "info");
    assert_eq!(ok[0]["source"], "walvault");
    let r = hook.received();
    assert!(
        r[0].path.ends_with("/SECRET-PATH")
            && r[0].headers.contains(&("authorization".into(), "Bearer TOKEN-XYZ".into()))
    );
    let failed = Run::of(walvault(&cfg).args([
        "base-backup",
        "-d",
        &format!("host={} port=1 user=postgres", p.sock.display()),
    ]));
    assert_ne!(failed.code, 0);
    assert!(!secret(&failed.stderr), "{}", failed.stderr);
    assert_eq!(hook.wait_for("backup_failed", 1, Duration::from_secs(10)).len(), 1);
    // delete and verify results.
    base_backup(&cfg, &p);
    archive_everything(&p);
    let run = Run::of(walvault(&cfg).args(["delete", "--retain-full", "1", "--confirm"]));
    run.expect(0);
    let deleted = hook.wait_for("delete_done", 1, Duration::from_secs(10));
    assert_eq!(
        deleted.len(),
        1,
        "{:?}\n{}",
        hook.received().iter().map(|r| r.body["event"].clone()).collect::<Vec<_>>(),
        run.stderr
    );
    assert_eq!(deleted[0]["backups_deleted"], 1);
    Run::of(walvault(&cfg).args(["verify"])).expect(0);
    assert_eq!(hook.wait_for("verify_done", 1, Duration::from_secs(10))[0]["sound"], true);
    // wal-push failing: one alert, however many calls fail within repeat_after; then one
    // "recovered" when archiving works again.
    let data = DataDir::new(&scratch);
    let dead = scratch.file(
        "dead.toml",
        format!(
            "timeout = \"1s\"\nretries = 0\n{}{notify}",
            s3_toml(&format!("http://127.0.0.1:{}", free_port()), "b", "p")
        ),
    );
    for i in 0..3u64 {
        let n = format!("0000000100000001{:08X}", i);
        let run = data.push(&dead, &data.wal(&n, &fake_segment(&n, SYSID, SEG_1M, i)));
        run.expect(1);
        assert!(!secret(&run.stderr), "{}", run.stderr);
    }
    let failing = hook.wait_for("archiving_failing", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        hook.wait_for("archiving_failing", 2, Duration::from_millis(100)).len(),
        1,
        "not rate-limited"
    );
    assert_eq!(failing[0]["failures"], 1);
    assert!(failing[0]["message"].as_str().unwrap().contains("walvault.json"), "{}", failing[0]);
    let fresh = Repo::file(&scratch);
    let good = fresh.config(
        &scratch,
        "good.toml",
        &format!("{}upload_concurrency = 1\n{notify}", extra("lz4", None)),
    );
    let n = "000000010000000100000009";
    data.push(&good, &data.wal(n, &fake_segment(n, SYSID, SEG_1M, 9))).expect(0);
    let recovered = hook.wait_for("archiving_recovered", 1, Duration::from_secs(10));
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0]["file"], n);
    // status --listen: a threshold crossed, then recovered.
    let two = scratch
        .file("two.toml", format!("{}\n[status]\nmin_backups = 2\n", std::fs::read_to_string(&cfg).unwrap()));
    let port = free_port();
    let listen = Killed(
        walvault(&two)
            .args(["status", "--listen", &format!("127.0.0.1:{port}"), "--refresh", "1s"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let crossed = hook.wait_for("threshold_crossed", 1, Duration::from_secs(30));
    assert!(crossed[0]["reasons"][0].as_str().unwrap().contains("min_backups = 2"), "{}", crossed[0]);
    base_backup(&cfg, &p);
    assert_eq!(hook.wait_for("threshold_recovered", 1, Duration::from_secs(30)).len(), 1);
    drop(listen);
    // Slack's payload.
    let slack = repo.config(
        &scratch,
        "slack.toml",
        &format!(
            "{}{}",
            extra("lz4", None),
            notify.replace("repeat_after", "format = \"slack\"\nrepeat_after")
        ),
    );
    Run::of(walvault(&slack).args(["verify"])).expect(0);
    let start = Instant::now();
    let text = loop {
        if let Some(t) =
            hook.received().iter().rev().find_map(|r| r.body["text"].as_str().map(str::to_string))
        {
            break t;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no Slack payload");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.contains("verify: everything checked is sound"), "{text}");
    // Nothing secret in any log: the server's (archive_command's stderr), the alert sender's.
    assert!(!secret(&p.log_text()), "a secret in the server log");
    let alerts_log =
        std::fs::read_to_string(data.path.join("pg_wal/.walvault/alerts.log")).unwrap_or_default();
    assert!(!secret(&alerts_log), "{alerts_log}");
    let shown = Run::of(walvault(&cfg).arg("config")).expect(0).stdout.clone();
    assert!(!secret(&shown) && shown.contains("<redacted>"), "{shown}");
    p.stop();
}

#[test]
fn the_alert_rules_pass_promtool() {
    if !have_promtool() {
        skip_or_fail!("promtool (Debian's prometheus package) not found");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let check = Run::of(Command::new("promtool").current_dir(&dir).args(["check", "rules", "alerts.yml"]));
    check.expect(0);
    assert!(check.stdout.contains("SUCCESS: 7 rules found"), "{}", check.stdout);
    let test = Run::of(Command::new("promtool").current_dir(&dir).args(["test", "rules", "alerts.test.yml"]));
    assert_eq!(test.code, 0, "{}\n{}", test.stdout, test.stderr);
    assert!(test.stdout.contains("SUCCESS"), "{}", test.stdout);
}
