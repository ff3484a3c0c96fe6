//! The examples at the end of each command's `--help` (and of its manual page). A unit test
//! checks every command has one.

/// `walvault --help`.
pub const WALVAULT: &str = "\
Examples:
  walvault keygen /etc/walvault/key
  walvault config --config /etc/walvault/walvault.toml
  walvault base-backup --config /etc/walvault/walvault.toml -d 'host=/var/run/postgresql user=postgres'
  walvault status --config /etc/walvault/walvault.toml
  walvault restore --config /etc/walvault/walvault.toml --target-dir /srv/restore \\
      --target-time '2026-12-01 09:59:00+00' --target-action promote

Logging: -v/-q or WALVAULT_LOG=error|warn|info|debug|trace|off; --log-format json (or
WALVAULT_LOG_FORMAT=json) for log collectors.
Exit codes: 0 done, 1 the repository or server failed (try again), 2 bad usage or configuration,
3 refused, unhealthy, or problems found (verify, check, a corrupt object); wal-fetch: 1 not
archived, 200-203 recovery must stop (see the README).";

/// `wal-push --help`.
pub const WAL_PUSH: &str = "\
Examples (postgresql.conf):
  archive_mode = on
  archive_command = '/usr/local/bin/wal-push --config /etc/walvault/walvault.toml %p'

By hand, from the data directory:
  wal-push --config /etc/walvault/walvault.toml pg_wal/000000010000000000000003";

/// `wal-fetch --help`.
pub const WAL_FETCH: &str = "\
Examples (postgresql.conf of a restored server or a standby):
  restore_command = '/usr/local/bin/wal-fetch --config /etc/walvault/walvault.toml %f %p'

By hand:
  wal-fetch --config /etc/walvault/walvault.toml 000000010000000000000003 /tmp/000000010000000000000003";

/// `walvault base-backup --help`.
pub const BASE_BACKUP: &str = "\
Examples:
  walvault base-backup --config /etc/walvault/walvault.toml -d 'host=/var/run/postgresql user=postgres'
  walvault base-backup --config /etc/walvault/walvault.toml -d postgres://backup@db1/postgres \\
      --fast-checkpoint --json

The server first runs a checkpoint. Without --fast-checkpoint it is a spread one, which can take up
to checkpoint_timeout x checkpoint_completion_target (4.5 minutes by default) before any data flows.";

/// `walvault list --help`.
pub const LIST: &str = "\
Examples:
  walvault list --config /etc/walvault/walvault.toml
  walvault list --config /etc/walvault/walvault.toml --json | jq '.backups[-1].id'
  walvault list --config /etc/walvault/walvault.toml --json | jq '.dumps[-1].id'";

/// `walvault restore --help`.
pub const RESTORE: &str = "\
Examples:
  walvault restore --config /etc/walvault/walvault.toml --target-dir /srv/pg-restore
  walvault restore --config /etc/walvault/walvault.toml --target-dir /srv/pg-restore \\
      --target-time '2026-12-01 09:59:00+00' --target-action promote
  walvault restore --config /etc/walvault/walvault.toml --target-dir /srv/pg-restore \\
      --backup 20261201T020000Z --target-lsn 0/3000060

Then start PostgreSQL on the directory: it recovers through wal-fetch to the target.";

/// `walvault config --help`.
pub const CONFIG: &str = "\
Examples:
  walvault config --config /etc/walvault/walvault.toml
  WALVAULT_REPO=s3://my-bucket/main walvault config";

/// `walvault delete --help`.
pub const DELETE: &str = "\
Examples:
  walvault delete --config /etc/walvault/walvault.toml --retain-full 7          # dry run: shows the plan
  walvault delete --config /etc/walvault/walvault.toml --retain-full 7 --confirm
  walvault delete --config /etc/walvault/walvault.toml --keep-within 14d --keep-monthly 12 --confirm
  walvault delete --config /etc/walvault/walvault.toml --backup 20261101T020000Z --confirm
  walvault delete --config /etc/walvault/walvault.toml --dump 20261101T030000Z --confirm

Dumps follow [retention.dumps] in the config file (retain, keep_within, keep_daily/weekly/monthly,
older_than); without it no dump is deleted by the policy.";

/// `walvault verify --help`.
pub const VERIFY: &str = "\
Examples:
  walvault verify --config /etc/walvault/walvault.toml
  walvault verify --config /etc/walvault/walvault.toml --wal --full
  walvault verify --config /etc/walvault/walvault.toml --restore-test --target-time '2026-12-01 09:00:00+00'
  walvault verify --config /etc/walvault/walvault.toml --restore-test --dump 20261201T020000Z

--restore-test drills what --backup and --dump name; with neither, the newest backup and the
newest dump.";

/// `walvault status --help`.
pub const STATUS: &str = "\
Examples:
  walvault status --config /etc/walvault/walvault.toml -d 'host=/var/run/postgresql'
  walvault status --config /etc/walvault/walvault.toml --prometheus
  walvault status --config /etc/walvault/walvault.toml --listen 127.0.0.1:9187 -d 'host=/var/run/postgresql'";

/// `walvault check --help`.
pub const CHECK: &str = "\
Examples:
  walvault check --config /etc/walvault/walvault.toml -d 'host=/var/run/postgresql user=postgres'
  walvault check --config /etc/walvault/walvault.toml -d postgres://postgres@db1/postgres --wait 2m --json";

/// `walvault mark --help`.
pub const MARK: &str = "\
Examples:
  walvault mark --config /etc/walvault/walvault.toml 20261201T020000Z --keep
  walvault mark --config /etc/walvault/walvault.toml 20261201T020000Z --unkeep
  walvault mark --config /etc/walvault/walvault.toml 20261201T030000Z --dump --keep   # a logical dump";

/// `walvault keygen --help`.
pub const KEYGEN: &str = "\
Examples:
  walvault keygen /etc/walvault/key && chown postgres: /etc/walvault/key

Keep a copy of the key somewhere other than the repository: without it nothing encrypted restores.";

/// `walvault completions --help`.
pub const COMPLETIONS: &str = "\
Examples:
  walvault completions bash > /etc/bash_completion.d/walvault
  walvault completions zsh > \"${fpath[1]}/_walvault\"
  walvault completions fish > ~/.config/fish/completions/walvault.fish";

/// `walvault man --help`.
pub const MAN: &str = "\
Examples:
  walvault man /usr/local/share/man/man1 && man walvault-restore";

/// `walvault dump --help`.
pub const DUMP: &str = "\
Examples:
  walvault dump --config /etc/walvault/walvault.toml -d 'host=/var/run/postgresql user=postgres dbname=app'
  walvault dump --config /etc/walvault/walvault.toml -d 'host=db1 user=postgres' --database app --database crm
  walvault dump --config /etc/walvault/walvault.toml -d 'host=db1 user=postgres' --all-databases --json

pg_dump -Fc of the server's major version runs with its own compression off; its output is
compressed, encrypted and stored as it streams, never on local disk.";

/// `walvault dump-restore --help`.
pub const DUMP_RESTORE: &str = "\
Examples:
  walvault dump-restore --config /etc/walvault/walvault.toml latest -d 'host=db2 user=postgres dbname=app'
  walvault dump-restore --config /etc/walvault/walvault.toml 20261201T020000Z --database app \\
      -d 'host=db2 user=postgres dbname=postgres' --create --jobs 4";

/// `walvault dump-fetch --help`.
pub const DUMP_FETCH: &str = "\
Examples:
  walvault dump-fetch --config /etc/walvault/walvault.toml latest --database app -o app.dump
  pg_restore --list app.dump
  walvault dump-fetch --config /etc/walvault/walvault.toml latest --globals -o globals.sql";
