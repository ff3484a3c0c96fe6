//! The row counts `walvault dump` records, counted in pg_dump's output as it streams past,
//! against `count(*)` of the source in a database with what makes counting hard: values with
//! newlines, backslashes and `\.`, bytea, rows larger than the reader's chunks, a table name
//! with a newline, partitions two levels deep, inheritance, an unlogged table, a generated
//! column, a large object. Read with each archive version: pg_dump 15 (Debian; archive 1.14),
//! 16 (1.15) and 18 (1.16) from `.tools/pg-client`. And when the output cannot be read that
//! way (pg_dump --inserts through a wrapper), the counts come from `count(*)`, with a warning.

use std::path::Path;
use std::process::Command;

use walvault::repo::dumps::DumpDescriptor;

use crate::support::datadir::extra;
use crate::support::pg::{Cluster, pg_bin, pg_client_bin};
use crate::support::repo::Repo;
use crate::support::{Run, Scratch, bins};

const FALLBACK: &str = "rows counted with count(*)";

fn source(scratch: &Scratch, bin: &Path) -> Cluster {
    let mut c = Cluster::init(scratch, "src", bin, &[]);
    c.configure(&[("fsync", "off")]);
    c.start();
    c.sql("create database rows");
    let sql = "create schema \"Odd \"\"schema\"\"\"; \
        create table \"Odd \"\"schema\"\"\".texts (id int, t text, b bytea); \
        insert into \"Odd \"\"schema\"\"\".texts values \
          (1, E'line one\\nline two', '\\x0a0a5c2e0a'), (2, E'\\\\.', null), \
          (3, E'tab\\there\\r\\n', ''), (4, '', '\\x00'), (5, null, null); \
        create table plain_empty (x int); \
        create unlogged table unlogged_t as select g from generate_series(1, 250) g; \
        create table parted (k int, v text) partition by range (k); \
        create table parted_a partition of parted for values from (0) to (100); \
        create table parted_b partition of parted for values from (100) to (1000) partition by range (k); \
        create table parted_b1 partition of parted_b for values from (100) to (1000); \
        insert into parted select g, 'v' || g from generate_series(0, 999) g; \
        create table base_t (x int); \
        create table child_t (y int) inherits (base_t); \
        insert into base_t values (1), (2); \
        insert into child_t values (3, 3), (4, 4), (5, 5); \
        create table gen_t (a int, b int generated always as (a * 2) stored); \
        insert into gen_t (a) select generate_series(1, 10); \
        create table \"line\nbreak\" (x int); \
        insert into \"line\nbreak\" values (1), (2), (3); \
        create table big_rows as select g, repeat(E'x\\n', 1000) as payload from generate_series(1, 3000) g; \
        select lo_from_bytea(0, '\\x0a0a0a5c2e0a');";
    let run = Run::of(c.client("psql").args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "rows", "-c", sql]));
    run.expect(0);
    c
}

fn dump(cfg: &Path, src: &Cluster, pg_bin: &Path) -> (DumpDescriptor, String) {
    let run = Run::of(
        Command::new(&bins().walvault)
            .args(["dump", "--config"])
            .arg(cfg)
            .args(["-d", &format!("host={} port={} user=postgres dbname=rows", src.sock.display(), src.port)])
            .arg("--pg-bin")
            .arg(pg_bin)
            .arg("--json"),
    );
    run.expect(0);
    let d = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("--json: {e}: {}", run.stdout));
    (d, run.stderr.clone())
}

/// Every recorded table's rows against `count(*)` in the source, and the tables recorded.
fn check_counts(src: &Cluster, d: &DumpDescriptor, what: &str) {
    let tables = &d.databases[0].tables;
    let mut names: Vec<String> = tables.iter().map(|t| format!("{}.{}", t.schema, t.table)).collect();
    names.sort();
    let mut want = [
        "Odd \"schema\".texts",
        "public.base_t",
        "public.big_rows",
        "public.child_t",
        "public.gen_t",
        "public.line\nbreak",
        "public.parted",
        "public.parted_a",
        "public.parted_b",
        "public.parted_b1",
        "public.plain_empty",
        "public.unlogged_t",
    ];
    want.sort();
    assert_eq!(names, want, "{what}: the tables recorded");
    for t in tables {
        let quoted = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let sql = format!("select count(*) from {}.{}", quoted(&t.schema), quoted(&t.table));
        let run = Run::of(src.client("psql").args([
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "rows",
            "-c",
            &sql,
        ]));
        run.expect(0);
        assert_eq!(run.stdout.trim(), t.rows.to_string(), "{what}: {}.{}", t.schema, t.table);
    }
    let rows = |name: &str| tables.iter().find(|t| t.table == name).map(|t| t.rows);
    // The figures the counting must get right, spelled out.
    assert_eq!(rows("texts"), Some(5), "{what}");
    assert_eq!(rows("parted"), Some(1000), "{what}: a partitioned table counts its partitions");
    assert_eq!(rows("parted_b"), Some(900), "{what}");
    assert_eq!(rows("base_t"), Some(5), "{what}: a parent counts its children's rows");
    assert_eq!(rows("big_rows"), Some(3000), "{what}");
}

#[test]
fn pg_dump_rows_counted_in_the_stream_match_count_star_for_each_archive_version() {
    let Some(bin) = pg_bin() else { crate::skip_or_fail!("PostgreSQL 15 not found") };
    let (Some(bin16), Some(bin18)) = (pg_client_bin(16), pg_client_bin(18)) else {
        crate::skip_or_fail!("pg_dump 16 and 18 (.tools/pg-client, scripts/install-deps.sh) not found")
    };
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    let src = source(&scratch, &bin);
    for (pg_dump_bin, major) in [(bin.clone(), "15"), (bin16, "16"), (bin18, "18")] {
        let (d, stderr) = dump(&cfg, &src, &pg_dump_bin);
        assert!(d.pg_dump_version.contains(&format!(" {major}.")), "{}", d.pg_dump_version);
        assert!(!stderr.contains(FALLBACK), "pg_dump {major}: the output was not read: {stderr}");
        check_counts(&src, &d, &format!("pg_dump {major}"));
    }
}

#[test]
fn pg_dump_output_that_cannot_be_read_is_counted_with_count_star() {
    let Some(bin) = pg_bin() else { crate::skip_or_fail!("PostgreSQL 15 not found") };
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    let src = source(&scratch, &bin);
    // A pg_dump writing INSERT statements instead of COPY text.
    let wrapper = scratch.subdir("inserts");
    let script = wrapper.join("pg_dump");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in --version|-V) exec {0} \"$@\";; esac\nexec {0} --inserts \"$@\"\n",
            bin.join("pg_dump").display()
        ),
    )
    .unwrap();
    Run::of(Command::new("chmod").arg("0755").arg(&script)).expect(0);
    let (d, stderr) = dump(&cfg, &src, &wrapper);
    assert!(stderr.contains(FALLBACK) && stderr.contains("does not end as COPY text does"), "{stderr}");
    check_counts(&src, &d, "pg_dump --inserts");
}
