//! One plain HTTP/1.1 request over loopback (the emulators' own set-up calls: buckets,
//! containers, seeding), without pulling an HTTP client into the tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `method path` with `headers` and `body` to `endpoint` (`http://host:port`); returns the
/// status code and the response body.
pub fn request(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").map_or(buf.len(), |p| p + 4);
    let text = String::from_utf8_lossy(&buf[..split]);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, buf[split..].to_vec()))
}

/// Waits until `endpoint` answers any HTTP request on `path`.
pub fn wait_for(endpoint: &str, path: &str, what: &str) {
    let start = std::time::Instant::now();
    while request(endpoint, "GET", path, &[], b"").is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            panic!("{what} did not come up on {endpoint}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
