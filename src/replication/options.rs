//! `ConnectOptions`: where and how to connect, resolved with libpq's rules: the conninfo string
//! (or URI) overrides `PG*` environment variables, which override the defaults.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use super::conninfo;
use super::error::ReplicationError;

/// PostgreSQL's default port.
pub const DEFAULT_PORT: u16 = 5432;
/// Socket directories tried, in order, when no host is given (Debian's, then upstream's).
pub const DEFAULT_SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];
/// `application_name` when none is configured (libpq's `fallback_application_name`).
pub const DEFAULT_APPLICATION_NAME: &str = "walvault";
/// The database name a physical replication connection matches in the passfile (as
/// `pg_basebackup` does) when no dbname is given.
pub const REPLICATION_DBNAME: &str = "replication";
/// libpq's smallest effective `connect_timeout`.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// libpq's `sslmode` values (`allow` is not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it, without certificate checks (unless a root certificate file
    /// exists, as libpq does), else plaintext. The default.
    Prefer,
    /// TLS or fail; the certificate is checked only if a root certificate file exists.
    Require,
    /// TLS, and the certificate chain must lead to `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self, ReplicationError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(ReplicationError::Config(
                    "sslmode \"allow\" is not supported: use disable or prefer".into(),
                ));
            }
            _ => return Err(ReplicationError::Config(format!("invalid sslmode value: \"{s}\""))),
        })
    }
}

/// libpq's `channel_binding` values for SCRAM over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBindingMode {
    /// Never use channel binding.
    Disable,
    /// Use it when the server offers `SCRAM-SHA-256-PLUS` over TLS. The default.
    Prefer,
    /// Fail unless SCRAM with channel binding is used.
    Require,
}

/// Where the server's CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file (`sslrootcert`, default `~/.postgresql/root.crt`); it may not exist.
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`).
    System,
}

/// One host to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// TCP: a host name (used for certificate checks and the passfile), and optionally the
    /// address to connect to instead of resolving the name (`hostaddr`).
    Tcp {
        /// The name (or the address as text when only `hostaddr` was given).
        name: String,
        /// `hostaddr`, if given.
        addr: Option<IpAddr>,
    },
    /// A Unix socket directory; the socket is `<dir>/.s.PGSQL.<port>`.
    Unix(PathBuf),
}

/// A host and the port to use with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host.
    pub host: Host,
    /// The port.
    pub port: u16,
}

/// Everything needed to open a replication connection. `Debug` never prints the password.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Hosts tried in order (libpq's host list); the first that accepts the connection is used.
    pub hosts: Vec<Endpoint>,
    /// The user name.
    pub user: String,
    /// The password, if given by `password` or `PGPASSWORD`; otherwise the passfile is read
    /// when the server asks for one.
    pub password: Option<SecretString>,
    /// The database name, if given (a physical replication connection does not use it, except
    /// to match passfile lines; `replication` is matched otherwise).
    pub dbname: Option<String>,
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA certificates for verification.
    pub sslrootcert: Option<RootCert>,
    /// SCRAM channel binding policy.
    pub channel_binding: ChannelBindingMode,
    /// `application_name` sent at startup.
    pub application_name: String,
    /// The password file (`passfile`, `PGPASSFILE`, default `~/.pgpass`).
    pub passfile: Option<PathBuf>,
    /// Time allowed for each host's connection attempt (socket, TLS and authentication).
    pub connect_timeout: Option<Duration>,
    /// Server `options` sent at startup (e.g. `-c wal_sender_timeout=0`), if any.
    pub options: Option<String>,
    /// A replication connection (the default) or an ordinary SQL session.
    pub session: Session,
}

/// What kind of connection to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Session {
    /// A physical replication connection (`replication=true`): replication commands only.
    #[default]
    Replication,
    /// An ordinary session on `dbname` (default: the user's name, as libpq does): SQL queries.
    Sql,
}

impl ConnectOptions {
    /// The same server and credentials as libpq's environment variables, for PostgreSQL's own
    /// programs (`pg_dump`, `pg_restore`): the password travels in the child's environment,
    /// never on its command line. The database is not included (the caller names it).
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        use secrecy::ExposeSecret;
        let mut env = Vec::new();
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|e| match &e.host {
                Host::Tcp { name, .. } => name.clone(),
                Host::Unix(dir) => dir.display().to_string(),
            })
            .collect();
        let addrs: Vec<String> = self
            .hosts
            .iter()
            .map(|e| match &e.host {
                Host::Tcp { addr: Some(a), .. } => a.to_string(),
                _ => String::new(),
            })
            .collect();
        env.push(("PGHOST", hosts.join(",")));
        if addrs.iter().any(|a| !a.is_empty()) {
            env.push(("PGHOSTADDR", addrs.join(",")));
        }
        env.push(("PGPORT", self.hosts.iter().map(|e| e.port.to_string()).collect::<Vec<_>>().join(",")));
        env.push(("PGUSER", self.user.clone()));
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD", p.expose_secret().to_string()));
        }
        let sslmode = match self.sslmode {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        };
        env.push(("PGSSLMODE", sslmode.into()));
        match &self.sslrootcert {
            Some(RootCert::File(f)) => env.push(("PGSSLROOTCERT", f.display().to_string())),
            Some(RootCert::System) => env.push(("PGSSLROOTCERT", "system".into())),
            None => {}
        }
        env.push(("PGAPPNAME", self.application_name.clone()));
        if let Some(f) = &self.passfile {
            env.push(("PGPASSFILE", f.display().to_string()));
        }
        if let Some(t) = self.connect_timeout {
            env.push(("PGCONNECT_TIMEOUT", t.as_secs().max(1).to_string()));
        }
        env
    }

    /// The same server and credentials, for an ordinary SQL session.
    pub fn sql_session(mut self) -> ConnectOptions {
        self.session = Session::Sql;
        self
    }

    /// The database a session opens, and a passfile line must match: the dbname, else
    /// `replication` for a replication connection (as `pg_basebackup` does) and the user's name
    /// for an SQL session (as libpq does).
    pub fn database(&self) -> &str {
        match (&self.dbname, self.session) {
            (Some(d), _) => d,
            (None, Session::Replication) => REPLICATION_DBNAME,
            (None, Session::Sql) => &self.user,
        }
    }
}

/// Where defaults come from: the environment, the OS user and the home directory. Tests
/// supply their own.
pub(crate) struct Sources<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub os_user: Option<String>,
    pub home: Option<PathBuf>,
}

/// Environment variables and the conninfo key each stands for.
const ENV_KEYS: [(&str, &str); 13] = [
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGPASSFILE", "passfile"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGAPPNAME", "application_name"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGOPTIONS", "options"),
    ("PGCHANNELBINDING", "channel_binding"),
];

/// Keys libpq knows that make no difference to this client; accepted and ignored.
const IGNORED_KEYS: [&str; 16] = [
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslcompression",
    "sslsni",
    "sslcrl",
    "sslcrldir",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "client_encoding",
    "load_balance_hosts",
];

/// The settings after merging, by key, before validation.
#[derive(Default)]
struct Raw {
    host: Option<String>,
    hostaddr: Option<String>,
    port: Option<String>,
    dbname: Option<String>,
    user: Option<String>,
    password: Option<String>,
    passfile: Option<String>,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    application_name: Option<String>,
    fallback_application_name: Option<String>,
    connect_timeout: Option<String>,
    options: Option<String>,
    channel_binding: Option<String>,
}

impl Raw {
    fn set(&mut self, key: &str, value: String) -> Result<(), ReplicationError> {
        let v = Some(value).filter(|v| !v.is_empty());
        let slot = match key {
            "host" => &mut self.host,
            "hostaddr" => &mut self.hostaddr,
            "port" => &mut self.port,
            "dbname" => &mut self.dbname,
            "user" => &mut self.user,
            "password" => &mut self.password,
            "passfile" => &mut self.passfile,
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "application_name" => &mut self.application_name,
            "fallback_application_name" => &mut self.fallback_application_name,
            "connect_timeout" => &mut self.connect_timeout,
            "options" => &mut self.options,
            "channel_binding" => &mut self.channel_binding,
            "replication" => {
                return match v.as_deref() {
                    None | Some("true" | "on" | "yes" | "1") => Ok(()),
                    Some(other) => Err(ReplicationError::Config(format!(
                        "replication={other} is not possible: walvault opens a physical replication connection"
                    ))),
                };
            }
            "sslcert" | "sslkey" | "sslpassword" | "sslcertmode" if v.is_some() => {
                return Err(ReplicationError::Config(format!(
                    "{key}: TLS client certificates are not supported"
                )));
            }
            "gssencmode" if v.as_deref() == Some("require") => {
                return Err(ReplicationError::Config("gssencmode=require: GSSAPI is not supported".into()));
            }
            "target_session_attrs" if v.as_deref().is_some_and(|v| v != "any") => {
                return Err(ReplicationError::Config(
                    "target_session_attrs other than \"any\" is not supported".into(),
                ));
            }
            "sslcert" | "sslkey" | "sslpassword" | "sslcertmode" | "gssencmode" | "target_session_attrs" => {
                return Ok(());
            }
            k if IGNORED_KEYS.contains(&k) => return Ok(()),
            k => return Err(ReplicationError::Config(format!("invalid connection option \"{k}\""))),
        };
        *slot = v;
        Ok(())
    }
}

impl ConnectOptions {
    /// libpq rules: conninfo (key=value or `postgresql://` URI) overrides `PG*` environment
    /// variables, which override defaults (host: the Unix socket directories
    /// `/var/run/postgresql` then `/tmp`; user: `$PGUSER` or the OS user; port 5432; password
    /// from `PGPASSWORD` or, when the server asks, the passfile `PGPASSFILE` / `~/.pgpass`).
    /// A `conninfo` without `=` that is not a URI is a database name, as with `psql -d`.
    pub fn from_env_and_conninfo(conninfo: Option<&str>) -> Result<Self, ReplicationError> {
        let env = |k: &str| std::env::var(k).ok();
        let sources = Sources { env: &env, os_user: os_user_name(), home: home_dir() };
        Self::resolve(conninfo, &sources)
    }

    pub(crate) fn resolve(conninfo: Option<&str>, src: &Sources<'_>) -> Result<Self, ReplicationError> {
        let mut raw = Raw::default();
        for (var, key) in ENV_KEYS {
            if let Some(v) = (src.env)(var) {
                raw.set(key, v)?;
            }
        }
        if let Some(ci) = conninfo {
            let pairs = if conninfo::looks_like_conninfo(ci) {
                conninfo::parse(ci)?
            } else {
                vec![("dbname".to_string(), ci.to_string())]
            };
            for (k, v) in pairs {
                raw.set(&k, v)?;
            }
        }
        Self::validate(raw, src)
    }

    fn validate(raw: Raw, src: &Sources<'_>) -> Result<Self, ReplicationError> {
        let config = |m: String| ReplicationError::Config(m);
        let hosts = endpoints(raw.host.as_deref(), raw.hostaddr.as_deref(), raw.port.as_deref())?;
        let user = raw.user.or_else(|| src.os_user.clone()).ok_or_else(|| {
            config(
                "no user name: set user in the connection string or PGUSER (the OS user is unknown)".into(),
            )
        })?;
        let sslrootcert = match raw.sslrootcert.as_deref() {
            Some("system") => Some(RootCert::System),
            Some(p) => Some(RootCert::File(PathBuf::from(p))),
            None => src.home.as_ref().map(|h| RootCert::File(h.join(".postgresql/root.crt"))),
        };
        let sslmode = match (raw.sslmode.as_deref(), &sslrootcert) {
            (None, Some(RootCert::System)) => SslMode::VerifyFull,
            (Some(m), Some(RootCert::System)) if m != "verify-full" => {
                return Err(config(format!(
                    "weak sslmode \"{m}\" may not be used with sslrootcert=system (use verify-full)"
                )));
            }
            (m, _) => SslMode::parse(m.unwrap_or("prefer"))?,
        };
        let channel_binding = match raw.channel_binding.as_deref().unwrap_or("prefer") {
            "disable" => ChannelBindingMode::Disable,
            "prefer" => ChannelBindingMode::Prefer,
            "require" => ChannelBindingMode::Require,
            other => return Err(config(format!("invalid channel_binding value: \"{other}\""))),
        };
        let connect_timeout = match raw.connect_timeout.as_deref() {
            None => None,
            Some(s) => match s.trim().parse::<i64>() {
                Ok(n) if n <= 0 => None,
                Ok(n) => Some(Duration::from_secs(n as u64).max(MIN_CONNECT_TIMEOUT)),
                Err(_) => {
                    return Err(config(format!(
                        "invalid integer value \"{s}\" for connection option \"connect_timeout\""
                    )));
                }
            },
        };
        let passfile =
            raw.passfile.map(PathBuf::from).or_else(|| src.home.as_ref().map(|h| h.join(".pgpass")));
        Ok(ConnectOptions {
            hosts,
            user,
            password: raw.password.map(SecretString::from),
            dbname: raw.dbname,
            sslmode,
            sslrootcert,
            channel_binding,
            application_name: raw
                .application_name
                .or(raw.fallback_application_name)
                .unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_string()),
            passfile,
            connect_timeout,
            options: raw.options,
            session: Session::Replication,
        })
    }
}

fn parse_port(s: &str) -> Result<u16, ReplicationError> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ReplicationError::Config(format!("invalid port number: \"{s}\""))),
    }
}

/// libpq's host, hostaddr and port lists combined into endpoints.
fn endpoints(
    host: Option<&str>,
    hostaddr: Option<&str>,
    port: Option<&str>,
) -> Result<Vec<Endpoint>, ReplicationError> {
    let config = |m: String| ReplicationError::Config(m);
    let hosts: Vec<&str> = host.map(|h| h.split(',').collect()).unwrap_or_default();
    let addrs: Vec<&str> = hostaddr.map(|h| h.split(',').collect()).unwrap_or_default();
    let n = hosts.len().max(addrs.len()).max(1);
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(config(format!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addrs.len()
        )));
    }
    let ports: Vec<&str> = port.map(|p| p.split(',').collect()).unwrap_or_default();
    let port_for = |i: usize| -> Result<u16, ReplicationError> {
        let p = match ports.len() {
            0 => "",
            1 => ports[0],
            k if k == n => ports[i],
            k => return Err(config(format!("could not match {k} port numbers to {n} hosts"))),
        };
        if p.trim().is_empty() { Ok(DEFAULT_PORT) } else { parse_port(p) }
    };
    let mut out = Vec::new();
    for i in 0..n {
        let port = port_for(i)?;
        let name = hosts.get(i).map(|h| h.trim()).unwrap_or("");
        let addr = match addrs.get(i).map(|a| a.trim()).filter(|a| !a.is_empty()) {
            Some(a) => Some(a.parse::<IpAddr>().map_err(|_| config(format!("invalid hostaddr \"{a}\"")))?),
            None => None,
        };
        match (name, addr) {
            (n, _) if n.starts_with('@') => {
                return Err(config(format!("abstract Unix sockets are not supported: \"{n}\"")));
            }
            (n, None) if n.starts_with('/') => {
                out.push(Endpoint { host: Host::Unix(PathBuf::from(n)), port })
            }
            ("", None) => out.extend(
                DEFAULT_SOCKET_DIRS.iter().map(|d| Endpoint { host: Host::Unix(PathBuf::from(d)), port }),
            ),
            ("", Some(a)) => {
                out.push(Endpoint { host: Host::Tcp { name: a.to_string(), addr: Some(a) }, port })
            }
            (n, a) => out.push(Endpoint { host: Host::Tcp { name: n.to_string(), addr: a }, port }),
        }
    }
    Ok(out)
}

impl Endpoint {
    /// How the endpoint is named in errors: `host:port` or the socket path.
    pub fn describe(&self) -> String {
        match &self.host {
            Host::Tcp { name, addr: Some(a) } if name != &a.to_string() => {
                format!("{name} ({a}) port {}", self.port)
            }
            Host::Tcp { name, .. } if name.contains(':') => format!("[{name}]:{}", self.port),
            Host::Tcp { name, .. } => format!("{name}:{}", self.port),
            Host::Unix(dir) => socket_path(dir, self.port).display().to_string(),
        }
    }

    /// The host as the passfile names it: the host name, `localhost` for a default socket
    /// directory, or the socket directory.
    pub(crate) fn passfile_host(&self) -> String {
        match &self.host {
            Host::Tcp { name, .. } => name.clone(),
            Host::Unix(dir) if DEFAULT_SOCKET_DIRS.iter().any(|d| Path::new(d) == dir) => "localhost".into(),
            Host::Unix(dir) => dir.display().to_string(),
        }
    }
}

/// `<dir>/.s.PGSQL.<port>`.
pub fn socket_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

/// The effective user's login name.
fn os_user_name() -> Option<String> {
    passwd_entry().map(|(name, _)| name)
}

/// `$HOME`, or the effective user's home directory.
fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| passwd_entry().map(|(_, h)| h))
}

fn passwd_entry() -> Option<(String, PathBuf)> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the duration of the call; `buf` outlives the uses of
    // the strings `pwd` points into, which are copied before it is dropped.
    let rc = unsafe { libc::getpwuid_r(libc::geteuid(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name and pw_dir are NUL-terminated strings in `buf`.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned();
    let dir = if pwd.pw_dir.is_null() {
        PathBuf::new()
    } else {
        // SAFETY: as above.
        PathBuf::from(std::ffi::OsStr::from_bytes(unsafe { CStr::from_ptr(pwd.pw_dir) }.to_bytes()))
    };
    Some((name, dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn resolve(conninfo: Option<&str>, env: &[(&str, &str)]) -> Result<ConnectOptions, ReplicationError> {
        let map: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |k: &str| map.get(k).cloned();
        let src = Sources { env: &lookup, os_user: Some("osuser".into()), home: Some("/home/o".into()) };
        ConnectOptions::resolve(conninfo, &src)
    }

    fn tcp(name: &str, port: u16) -> Endpoint {
        Endpoint { host: Host::Tcp { name: name.into(), addr: None }, port }
    }

    #[test]
    fn defaults() {
        let o = resolve(None, &[]).unwrap();
        assert_eq!(
            o.hosts,
            vec![
                Endpoint { host: Host::Unix("/var/run/postgresql".into()), port: 5432 },
                Endpoint { host: Host::Unix("/tmp".into()), port: 5432 }
            ]
        );
        assert_eq!(o.user, "osuser");
        assert!(o.password.is_none());
        assert_eq!(o.sslmode, SslMode::Prefer);
        assert_eq!(o.sslrootcert, Some(RootCert::File("/home/o/.postgresql/root.crt".into())));
        assert_eq!(o.passfile, Some(PathBuf::from("/home/o/.pgpass")));
        assert_eq!(o.application_name, "walvault");
        assert_eq!(o.connect_timeout, None);
        assert_eq!(o.hosts[1].describe(), "/tmp/.s.PGSQL.5432");
        assert_eq!(o.hosts[0].passfile_host(), "localhost");
    }

    #[test]
    fn conninfo_overrides_env_which_overrides_defaults() {
        let env = [
            ("PGHOST", "envhost"),
            ("PGPORT", "6000"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envpw"),
            ("PGSSLMODE", "require"),
            ("PGAPPNAME", "envapp"),
            ("PGPASSFILE", "/env/pgpass"),
            ("PGSSLROOTCERT", "/env/root.crt"),
            ("PGCONNECT_TIMEOUT", "1"),
        ];
        let o = resolve(None, &env).unwrap();
        assert_eq!(o.hosts, vec![tcp("envhost", 6000)]);
        assert_eq!((o.user.as_str(), o.application_name.as_str()), ("envuser", "envapp"));
        assert_eq!(o.password.as_ref().unwrap().expose_secret(), "envpw");
        assert_eq!(o.sslmode, SslMode::Require);
        assert_eq!(o.passfile, Some(PathBuf::from("/env/pgpass")));
        assert_eq!(o.sslrootcert, Some(RootCert::File("/env/root.crt".into())));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(2)), "libpq's minimum of 2 s");

        let o = resolve(Some("host=cihost user=ciuser password=cipw sslmode=verify-full"), &env).unwrap();
        assert_eq!(o.hosts, vec![tcp("cihost", 6000)], "the port still comes from PGPORT");
        assert_eq!(o.user, "ciuser");
        assert_eq!(o.password.as_ref().unwrap().expose_secret(), "cipw");
        assert_eq!(o.sslmode, SslMode::VerifyFull);

        let o = resolve(Some("postgresql://uriuser@urihost:7000/db?application_name=uriapp"), &env).unwrap();
        assert_eq!(o.hosts, vec![tcp("urihost", 7000)]);
        assert_eq!((o.user.as_str(), o.application_name.as_str()), ("uriuser", "uriapp"));
        assert_eq!(o.dbname.as_deref(), Some("db"));

        let o = resolve(Some("mydb"), &env).unwrap();
        assert_eq!(o.dbname.as_deref(), Some("mydb"), "a bare -d value is a database name");
    }

    #[test]
    fn host_lists_ports_and_hostaddr() {
        let o = resolve(Some("host=a,/sock,b port=1,2,3"), &[]).unwrap();
        assert_eq!(
            o.hosts,
            vec![tcp("a", 1), Endpoint { host: Host::Unix("/sock".into()), port: 2 }, tcp("b", 3)]
        );
        let o = resolve(Some("host=a,b port=9"), &[]).unwrap();
        assert_eq!(o.hosts, vec![tcp("a", 9), tcp("b", 9)]);
        let o = resolve(Some("host=db.example hostaddr=127.0.0.1"), &[]).unwrap();
        assert_eq!(
            o.hosts,
            vec![Endpoint {
                host: Host::Tcp { name: "db.example".into(), addr: Some([127, 0, 0, 1].into()) },
                port: 5432
            }]
        );
        assert_eq!(o.hosts[0].describe(), "db.example (127.0.0.1) port 5432");
        let o = resolve(Some("hostaddr=::1"), &[]).unwrap();
        assert_eq!(o.hosts[0].describe(), "[::1]:5432");
        for bad in [
            "host=a,b port=1,2,3",
            "host=a,b hostaddr=127.0.0.1",
            "port=0",
            "port=x",
            "hostaddr=nope",
            "host=@abs",
        ] {
            assert!(matches!(resolve(Some(bad), &[]), Err(ReplicationError::Config(_))), "{bad}");
        }
    }

    #[test]
    fn validation() {
        for bad in [
            "sslmode=bogus",
            "sslmode=allow",
            "nosuchkey=1",
            "replication=database",
            "sslcert=/x",
            "connect_timeout=abc",
            "channel_binding=maybe",
            "sslrootcert=system sslmode=require",
        ] {
            let r = resolve(Some(bad), &[]);
            assert!(matches!(r, Err(ReplicationError::Config(_))), "{bad}: {r:?}");
        }
        let o = resolve(Some("sslrootcert=system keepalives=1 replication=true connect_timeout=10"), &[])
            .unwrap();
        assert_eq!((o.sslmode, o.sslrootcert), (SslMode::VerifyFull, Some(RootCert::System)));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(10)));
        assert_eq!(resolve(Some("connect_timeout=0"), &[]).unwrap().connect_timeout, None);
    }

    #[test]
    fn debug_never_prints_the_password() {
        let o = resolve(Some("password=hunter2-secret"), &[]).unwrap();
        let s = format!("{o:?}");
        assert!(!s.contains("hunter2"), "{s}");
    }
}
