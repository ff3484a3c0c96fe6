//! `latency-proxy` (bench/latency_proxy.rs, built with the `test-tools` feature) run for a test:
//! a TCP proxy that adds a round-trip time to every connection.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running proxy; killed on drop.
pub struct Proxy {
    pub addr: String,
    child: Child,
}

/// The proxy program, built only with the `test-tools` feature (scripts/test.sh turns it on).
pub fn program() -> Option<&'static str> {
    option_env!("CARGO_BIN_EXE_latency-proxy")
}

/// The proxy program, or a loud skip (a failure under CI).
#[macro_export]
macro_rules! require_proxy {
    () => {
        match $crate::support::proxy::program() {
            Some(p) => p,
            None => $crate::skip_or_fail!("latency-proxy is not built: run with --features test-tools"),
        }
    };
}

impl Proxy {
    pub fn start(program: &str, upstream: &str, rtt_ms: u64) -> Proxy {
        let mut child = Command::new(program)
            .args(["--listen", "127.0.0.1:0", "--upstream", upstream, "--rtt-ms", &rtt_ms.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ").expect("proxy prints its address").to_string();
        Proxy { addr, child }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
