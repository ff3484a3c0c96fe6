//! libpq connection strings, parsed without IO: `key=value` conninfo (quotes and backslash
//! escapes) and `postgresql://` / `postgres://` URIs (percent-encoding, host lists, query
//! parameters). The result is a list of keys and values, validated later by `options`.

use percent_encoding::percent_decode_str;

use super::error::ReplicationError;

/// Parses a conninfo string or URI into `(key, value)` pairs, in order (later keys win).
pub fn parse(s: &str) -> Result<Vec<(String, String)>, ReplicationError> {
    if is_uri(s) { parse_uri(s) } else { parse_key_values(s) }
}

/// Whether `s` is a URI rather than key=value pairs.
pub fn is_uri(s: &str) -> bool {
    s.starts_with("postgresql://") || s.starts_with("postgres://")
}

/// Whether a `-d`/`dbname` value is itself a connection string (libpq's `expand_dbname`).
pub fn looks_like_conninfo(s: &str) -> bool {
    is_uri(s) || s.contains('=')
}

fn bad(msg: impl Into<String>) -> ReplicationError {
    ReplicationError::Config(msg.into())
}

fn parse_key_values(s: &str) -> Result<Vec<(String, String)>, ReplicationError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(bad(format!("missing \"=\" after \"{key}\" in connection info string")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(bad("unterminated quoted string in connection info string")),
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(bad("unterminated quoted string in connection info string")),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(e) = chars.next() {
                        value.push(e);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

fn decode(part: &str, what: &str) -> Result<String, ReplicationError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| bad(format!("invalid percent-encoded {what} in URI: {part:?}")))
}

fn parse_uri(s: &str) -> Result<Vec<(String, String)>, ReplicationError> {
    let rest = s.split_once("://").map(|(_, r)| r).unwrap_or(s);
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    let mut out = Vec::new();
    let hostspec = match authority.rsplit_once('@') {
        Some((userspec, hosts)) => {
            let (user, password) = match userspec.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userspec, None),
            };
            if !user.is_empty() {
                out.push(("user".to_string(), decode(user, "user name")?));
            }
            if let Some(p) = password {
                out.push(("password".to_string(), decode(p, "password")?));
            }
            hosts
        }
        None => authority,
    };
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for one in hostspec.split(',') {
            let (host, port) = if let Some(v6) = one.strip_prefix('[') {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad(format!("missing \"]\" in IPv6 host address in URI: {s:?}")))?;
                match after {
                    "" => (h, ""),
                    p if p.starts_with(':') => (h, &p[1..]),
                    _ => return Err(bad(format!("unexpected characters after IPv6 address in URI: {s:?}"))),
                }
            } else {
                match one.split_once(':') {
                    Some((h, p)) => (h, p),
                    None => (one, ""),
                }
            };
            hosts.push(decode(host, "host")?);
            ports.push(decode(port, "port")?);
        }
        out.push(("host".to_string(), hosts.join(",")));
        if ports.iter().any(|p| !p.is_empty()) {
            out.push(("port".to_string(), ports.join(",")));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        out.push(("dbname".to_string(), decode(db, "database name")?));
    }
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            bad(format!("missing key/value separator \"=\" in URI query parameter: {pair:?}"))
        })?;
        let (k, v) = (decode(k, "parameter name")?, decode(v, "parameter value")?);
        // libpq's JDBC-compatible spelling.
        if k == "ssl" && v == "true" {
            out.push(("sslmode".to_string(), "require".to_string()));
        } else {
            out.push((k, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn key_values_with_quotes_escapes_and_spaces() {
        assert_eq!(
            parse("host=localhost port=5433  user = bob dbname='my db'").unwrap(),
            kv(&[("host", "localhost"), ("port", "5433"), ("user", "bob"), ("dbname", "my db")])
        );
        assert_eq!(
            parse(r"password='it\'s \\ secret' application_name=a\ b sslmode=''").unwrap(),
            kv(&[("password", r"it's \ secret"), ("application_name", "a b"), ("sslmode", "")])
        );
        assert_eq!(parse("  ").unwrap(), kv(&[]));
        assert_eq!(parse("host=a host=b").unwrap(), kv(&[("host", "a"), ("host", "b")]));
        assert_eq!(parse("password=p=q").unwrap(), kv(&[("password", "p=q")]));
    }

    #[test]
    fn key_value_errors() {
        for bad in ["host", "host=a port", "password='abc", "password='abc\\", "=x =y"] {
            let r = parse(bad);
            if bad == "=x =y" {
                // An empty key parses; `options` rejects it as unknown.
                assert_eq!(r.unwrap(), kv(&[("", "x"), ("", "y")]));
            } else {
                assert!(matches!(r, Err(ReplicationError::Config(_))), "{bad:?} -> {r:?}");
            }
        }
    }

    #[test]
    fn uris() {
        assert_eq!(
            parse("postgresql://user:p%40ss%3Aword@db.example.com:5433/mydb?sslmode=verify-full&application_name=x%20y")
                .unwrap(),
            kv(&[
                ("user", "user"),
                ("password", "p@ss:word"),
                ("host", "db.example.com"),
                ("port", "5433"),
                ("dbname", "mydb"),
                ("sslmode", "verify-full"),
                ("application_name", "x y"),
            ])
        );
        assert_eq!(parse("postgres://").unwrap(), kv(&[]));
        assert_eq!(parse("postgresql:///db").unwrap(), kv(&[("dbname", "db")]));
        assert_eq!(
            parse("postgresql://%2Fvar%2Frun%2Fpostgresql/db").unwrap(),
            kv(&[("host", "/var/run/postgresql"), ("dbname", "db")])
        );
        assert_eq!(
            parse("postgresql://h1:1,h2,[::1]:3/?ssl=true").unwrap(),
            kv(&[("host", "h1,h2,::1"), ("port", "1,,3"), ("sslmode", "require")])
        );
        assert_eq!(
            parse("postgresql://[2001:db8::1]/x?host=%2Ftmp").unwrap(),
            kv(&[("host", "2001:db8::1"), ("dbname", "x"), ("host", "/tmp")])
        );
        assert_eq!(parse("postgresql://u@h").unwrap(), kv(&[("user", "u"), ("host", "h")]));
        for bad in ["postgresql://h/?a", "postgresql://[::1", "postgresql://[::1]x/", "postgresql://h/%ff"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(looks_like_conninfo("host=x") && looks_like_conninfo("postgres://x"));
        assert!(!looks_like_conninfo("mydb"));
    }
}
