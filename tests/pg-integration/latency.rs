//! The latency test bed: `latency-proxy` adds the configured round-trip time to every request
//! (at least one RTT for a small GET), keeps many connections going at once, and walvault works
//! through it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::datadir::{DataDir, SEG_1M, SYSID, extra};
use crate::support::proxy::Proxy;
use crate::support::repo::Repo;
use crate::support::{Scratch, fake_segment};
use crate::{require_proxy, require_s3};

/// One small GET on an already open connection; returns how long the response took.
fn get(stream: &mut TcpStream, host: &str) -> Duration {
    let t = Instant::now();
    write!(stream, "GET / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut buf = [0u8; 1];
    stream.read_exact(&mut buf).unwrap();
    t.elapsed()
}

#[test]
fn a_small_get_takes_at_least_the_round_trip() {
    let program = require_proxy!();
    let server = require_s3!();
    let upstream = server.endpoint.trim_start_matches("http://").to_string();
    let rtt = Duration::from_millis(150);
    let proxy = Proxy::start(program, &upstream, rtt.as_millis() as u64);
    // A GET on a new connection pays one round trip for the set-up and one for the request.
    let first = get(&mut TcpStream::connect(&proxy.addr).unwrap(), &upstream);
    eprintln!("a GET through a {rtt:?} proxy: {first:?}");
    assert!(first >= rtt * 2, "a GET took {first:?}");

    // Eight connections at once are not served one after another.
    let t = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (addr, host) = (proxy.addr.clone(), upstream.clone());
            std::thread::spawn(move || get(&mut TcpStream::connect(addr).unwrap(), &host))
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap() >= rtt * 2);
    }
    let all = t.elapsed();
    eprintln!("8 concurrent first GETs: {all:?}");
    assert!(all < rtt * 2 * 8, "8 concurrent GETs took {all:?}: connections are serialised");
}

#[test]
fn walvault_works_through_the_proxy() {
    let program = require_proxy!();
    let server = require_s3!();
    let upstream = server.endpoint.trim_start_matches("http://").to_string();
    let proxy = Proxy::start(program, &upstream, 20);
    let scratch = Scratch::new();
    // A bucket on the server, reached through the proxy.
    let repo = Repo::s3(&server);
    let cfg_direct = repo.config(&scratch, "direct.toml", &extra("zstd", None));
    let text = std::fs::read_to_string(&cfg_direct)
        .unwrap()
        .replace(&server.endpoint, &format!("http://{}", proxy.addr));
    let cfg = scratch.file("proxied.toml", text);
    let data = DataDir::new(&scratch);
    let name = "000000010000000000000001";
    let seg = fake_segment(name, SYSID, SEG_1M, 1);
    data.push(&cfg, &data.wal(name, &seg)).expect(0);
    let (run, got) = data.fetch(&cfg, name);
    run.expect(0);
    assert!(got.as_deref() == Some(&seg[..]));
}
