//! `fault-proxy`: an HTTP/1.1 proxy for the fault tests that stands in front of a storage server
//! (moto's S3 server) and misbehaves on request: it answers 500 or 503 itself, resets the
//! connection, accepts a request and never answers, stops in the middle of a body (an upload's,
//! so the server sees a cut request; or a download's), returns a 200 whose body is shorter than
//! its `Content-Length` and then closes, returns a 200 with a consistent but shorter
//! `Content-Length` and body, or goes down altogether (the listening socket is closed, so
//! connecting is refused, and open connections are reset) until told otherwise.
//!
//! ```text
//! fault-proxy --upstream 127.0.0.1:9000 [--mode 503 --every 1 --seed 7]
//! ```
//! Prints `listening on ADDR` and `control on ADDR` on stdout once ready. The control address
//! answers `GET /set?mode=M&every=N&after=N&limit=N&method=GET&path=SUBSTR` (a new fault
//! setting; its counters start again) and `GET /stats` (JSON: requests seen, faults injected
//! per mode, the request lines faulted). A request is faulted when it matches `method` and
//! `path` (a substring of the request target), it is not among the first `after` matching ones,
//! its number after those is a multiple of `every`, and fewer than `limit` (0: no limit) faults
//! of this setting were injected. Where a body is cut, the cut point is drawn from `--seed`.
//!
//! Every request goes to the upstream on a connection of its own (`Connection: close`), and the
//! response is read whole before anything is sent on, so a fault can be applied to a complete
//! response; the connection to the client stays open between requests, as a server's would.
//! Loopback only by intent; a test-support program (feature `test-tools`), not a product.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The longest request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Faulted request lines kept for `/stats`.
const MAX_LOGGED: usize = 1000;

/// What to do to a faulted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Forward everything untouched.
    Pass,
    /// Answer `500 Internal Server Error` (S3's `InternalError`).
    #[value(name = "500")]
    E500,
    /// Answer `503 Service Unavailable` (S3's `SlowDown`).
    #[value(name = "503")]
    E503,
    /// Reset the connection (RST) once the request has arrived.
    Reset,
    /// Accept the request and never answer.
    Hang,
    /// Stop in the middle of the body: an upload's (the server gets a cut request and the client
    /// no answer) or, for requests without a body, the response's; then close.
    Cut,
    /// A 200 with its `Content-Length` kept but fewer bytes sent, then close.
    ShortClose,
    /// A 200 with a shorter, consistent `Content-Length` and body; the connection stays usable.
    ShortLength,
    /// The server is gone: refuse connections and reset open ones until the next `/set`.
    Down,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Pass => "pass",
            Mode::E500 => "500",
            Mode::E503 => "503",
            Mode::Reset => "reset",
            Mode::Hang => "hang",
            Mode::Cut => "cut",
            Mode::ShortClose => "short-close",
            Mode::ShortLength => "short-length",
            Mode::Down => "down",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        <Mode as clap::ValueEnum>::from_str(s, false).ok()
    }
}

/// An HTTP proxy that injects storage faults (see the module documentation).
#[derive(Parser, Debug)]
#[command(name = "fault-proxy")]
struct Args {
    /// Address to listen on (port 0: pick a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Address of the control endpoint (`/set`, `/stats`).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// The server to forward to.
    #[arg(long)]
    upstream: SocketAddr,
    /// The initial fault.
    #[arg(long, default_value = "pass")]
    mode: Mode,
    /// Fault every Nth matching request.
    #[arg(long, default_value_t = 1)]
    every: u64,
    /// Let the first N matching requests through.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// Inject at most N faults (0: no limit).
    #[arg(long, default_value_t = 0)]
    limit: u64,
    /// Seed of the cut points.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// One fault setting.
#[derive(Clone, Debug)]
struct Setting {
    mode: Mode,
    every: u64,
    after: u64,
    limit: u64,
    method: Option<String>,
    path: Option<String>,
}

/// What the proxy has seen and done.
struct State {
    setting: Setting,
    /// Matching requests under the current setting.
    matched: u64,
    /// Faults injected (or reserved) under the current setting.
    injected: u64,
    requests: u64,
    faults: BTreeMap<&'static str, u64>,
    faulted: Vec<String>,
    rng: u64,
}

impl State {
    /// The fault for this request, reserved (counted) at once so that concurrent requests
    /// respect `limit`; [`State::unreserve`] gives it back when it turned out not to apply.
    fn decide(&mut self, method: &str, target: &str) -> Option<Mode> {
        self.requests += 1;
        let s = &self.setting;
        if s.method.as_deref().is_some_and(|m| !m.eq_ignore_ascii_case(method))
            || s.path.as_deref().is_some_and(|p| !target.contains(p))
        {
            return None;
        }
        self.matched += 1;
        if self.matched <= s.after
            || !(self.matched - s.after).is_multiple_of(s.every.max(1))
            || (s.limit > 0 && self.injected >= s.limit)
            || s.mode == Mode::Pass
        {
            return None;
        }
        self.injected += 1;
        *self.faults.entry(s.mode.name()).or_default() += 1;
        if self.faulted.len() < MAX_LOGGED {
            self.faulted.push(format!("{} {method} {target}", s.mode.name()));
        }
        Some(s.mode)
    }

    fn unreserve(&mut self, mode: Mode, method: &str, target: &str) {
        self.injected = self.injected.saturating_sub(1);
        if let Some(n) = self.faults.get_mut(mode.name()) {
            *n -= 1;
            if *n == 0 {
                self.faults.remove(mode.name());
            }
        }
        let line = format!("{} {method} {target}", mode.name());
        if let Some(i) = self.faulted.iter().rposition(|l| *l == line) {
            self.faulted.remove(i);
        }
    }

    /// A cut point in `0..len` (xorshift64*).
    fn cut(&mut self, len: usize) -> usize {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        if len == 0 { 0 } else { (r % len as u64) as usize }
    }
}

struct Shared {
    state: Mutex<State>,
    /// True while the proxy plays a server that is down.
    down: watch::Sender<bool>,
    upstream: SocketAddr,
}

type Conn = Arc<Shared>;

/// A parsed HTTP head and the raw bytes it came in.
struct Head {
    raw: Vec<u8>,
    /// Request: method; response: status code.
    first: String,
    second: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> Option<usize> {
        self.header("content-length").and_then(|v| v.trim().parse().ok())
    }

    /// The head again, with `drop` headers left out and `add` appended.
    fn rebuild(&self, drop: &[&str], add: &[(&str, String)]) -> Vec<u8> {
        let text = String::from_utf8_lossy(&self.raw);
        let mut lines = text.split("\r\n");
        let mut out = format!("{}\r\n", lines.next().unwrap_or_default());
        for line in lines.filter(|l| !l.is_empty()) {
            let name = line.split(':').next().unwrap_or_default().trim();
            if !drop.iter().any(|d| d.eq_ignore_ascii_case(name)) {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        for (k, v) in add {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Parses a complete head (`buf` up to and including the blank line).
fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.splitn(3, ' ');
    let (a, b) = (first.next()?.to_string(), first.next()?.to_string());
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect();
    Some(Head { raw: raw.to_vec(), first: a, second: b, headers })
}

/// The end of the head in `buf` (just past the blank line), if it is all there.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The length of a complete chunked body at the start of `buf` (trailers included), if complete.
fn chunked_len(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let line_end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
        let size_text = std::str::from_utf8(&buf[pos..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
                let empty = end == pos;
                pos = end + 2;
                if empty {
                    return Some(pos);
                }
            }
        }
        pos += size + 2;
        if pos > buf.len() {
            return None;
        }
    }
}

/// The payload of a complete chunked body.
fn dechunk(buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(line_end) = buf[pos..].windows(2).position(|w| w == b"\r\n").map(|p| p + pos) {
        let size = std::str::from_utf8(&buf[pos..line_end])
            .ok()
            .and_then(|t| usize::from_str_radix(t.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&buf[start..(start + size).min(buf.len())]);
        pos = start + size + 2;
        if pos >= buf.len() {
            break;
        }
    }
    out
}

/// Reads one request (head and body) from `client`; `None` when the client is gone or the
/// proxy went down meanwhile (then the connection is reset).
async fn read_request(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    down: &mut watch::Receiver<bool>,
) -> Option<(Head, Vec<u8>)> {
    let head_len = loop {
        if let Some(n) = head_end(buf) {
            break n;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        read_more(client, buf, down).await?;
    };
    let head = parse_head(&buf[..head_len])?;
    buf.drain(..head_len);
    let body_len = if head.chunked() {
        loop {
            if let Some(n) = chunked_len(buf) {
                break n;
            }
            read_more(client, buf, down).await?;
        }
    } else {
        let n = head.content_length().unwrap_or(0);
        while buf.len() < n {
            read_more(client, buf, down).await?;
        }
        n
    };
    let body: Vec<u8> = buf.drain(..body_len).collect();
    Some((head, body))
}

/// Reads more bytes into `buf`, or `None` at end of input, on an error, or when the proxy goes
/// down.
async fn read_more(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    down: &mut watch::Receiver<bool>,
) -> Option<()> {
    let mut chunk = [0u8; 64 * 1024];
    tokio::select! {
        r = client.read(&mut chunk) => match r {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
        },
        _ = down.wait_for(|d| *d) => None,
    }
}

/// Closes with a reset (SO_LINGER 0) instead of an orderly FIN.
fn reset(stream: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on an open socket with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

/// Sends the request upstream on a connection of its own and reads the whole response.
async fn forward(upstream: SocketAddr, head: &Head, body: &[u8]) -> std::io::Result<(Head, Vec<u8>)> {
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&head.rebuild(&["connection"], &[("Connection", "close".into())])).await?;
    up.write_all(body).await?;
    let mut buf = Vec::new();
    up.read_to_end(&mut buf).await?;
    let n = head_end(&buf).ok_or_else(|| std::io::Error::other("upstream sent no response head"))?;
    let resp = parse_head(&buf[..n]).ok_or_else(|| std::io::Error::other("bad upstream response head"))?;
    Ok((resp, buf[n..].to_vec()))
}

/// Whether a response to `method` with `status` carries a body.
fn has_body(method: &str, status: &str) -> bool {
    !(method.eq_ignore_ascii_case("HEAD") || status == "204" || status == "304" || status.starts_with('1'))
}

/// The response head for the client: keep-alive, and a length when the upstream delimited the
/// body by closing.
fn client_head(method: &str, resp: &Head, body: &[u8]) -> Vec<u8> {
    if has_body(method, &resp.second) && !resp.chunked() && resp.content_length().is_none() {
        resp.rebuild(&["connection"], &[("Content-Length", body.len().to_string())])
    } else {
        resp.rebuild(&["connection"], &[])
    }
}

fn error_response(method: &str, status: u16) -> Vec<u8> {
    let (reason, code) = if status == 500 {
        ("Internal Server Error", "InternalError")
    } else {
        ("Service Unavailable", "SlowDown")
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>fault-proxy: injected {status}</Message><RequestId>fault-proxy</RequestId></Error>"
    );
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !method.eq_ignore_ascii_case("HEAD") {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

async fn serve(mut client: TcpStream, shared: Conn) {
    let _ = client.set_nodelay(true);
    let mut down = shared.down.subscribe();
    let mut buf = Vec::new();
    loop {
        let Some((head, body)) = read_request(&mut client, &mut buf, &mut down).await else {
            return reset(client);
        };
        let (method, target) = (head.first.clone(), head.second.clone());
        let fault = shared.state.lock().unwrap().decide(&method, &target);
        match fault {
            Some(Mode::Down) => {
                shared.down.send_replace(true);
                return reset(client);
            }
            Some(Mode::E500) | Some(Mode::E503) => {
                let status = if fault == Some(Mode::E500) { 500 } else { 503 };
                if client.write_all(&error_response(&method, status)).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Mode::Reset) => return reset(client),
            Some(Mode::Hang) => {
                // Hold the connection, read and drop whatever comes, never answer.
                let mut sink = [0u8; 64 * 1024];
                while let Ok(n) = client.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
                return;
            }
            Some(Mode::Cut) if body.len() >= 2 => {
                // The upload stops mid-body: the server sees a request cut short.
                let at = shared.state.lock().unwrap().cut(body.len());
                if let Ok(mut up) = TcpStream::connect(shared.upstream).await {
                    let _ =
                        up.write_all(&head.rebuild(&["connection"], &[("Connection", "close".into())])).await;
                    let _ = up.write_all(&body[..at]).await;
                    let _ = up.flush().await;
                    // Give the server a moment to take the bytes in before the connection goes.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    reset(up);
                }
                return reset(client);
            }
            _ => {}
        }
        let (resp, rbody) = match forward(shared.upstream, &head, &body).await {
            Ok(r) => r,
            Err(_) => return reset(client),
        };
        let bodied = has_body(&method, &resp.second) && !rbody.is_empty();
        let applies = match fault {
            Some(Mode::Cut) => bodied,
            Some(Mode::ShortClose | Mode::ShortLength) => bodied && resp.second == "200",
            _ => false,
        };
        if let Some(mode) = fault
            && !applies
        {
            shared.state.lock().unwrap().unreserve(mode, &method, &target);
        }
        match fault {
            Some(Mode::Cut | Mode::ShortClose) if applies => {
                // Send the head as it came and part of the body, then close: the client was
                // promised more than it gets.
                let at = shared.state.lock().unwrap().cut(rbody.len());
                let _ = client.write_all(&client_head(&method, &resp, &rbody)).await;
                let _ = client.write_all(&rbody[..at]).await;
                let _ = client.flush().await;
                let _ = client.shutdown().await;
                return;
            }
            Some(Mode::ShortLength) if applies => {
                let payload = if resp.chunked() { dechunk(&rbody) } else { rbody };
                let at = shared.state.lock().unwrap().cut(payload.len());
                let h = resp.rebuild(
                    &["connection", "content-length", "transfer-encoding"],
                    &[("Content-Length", at.to_string())],
                );
                if client.write_all(&h).await.is_err() || client.write_all(&payload[..at]).await.is_err() {
                    return;
                }
            }
            _ => {
                if client.write_all(&client_head(&method, &resp, &rbody)).await.is_err()
                    || client.write_all(&rbody).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Accepts connections while the proxy is up; while it is down the port is closed (connections
/// are refused), and it is bound again when it comes back.
async fn accept_loop(first: TcpListener, shared: Conn) {
    let addr = first.local_addr().expect("bound");
    let mut listener = Some(first);
    let mut down = shared.down.subscribe();
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => {
                let _ = down.wait_for(|d| !*d).await;
                match TcpListener::bind(addr).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("fault-proxy: cannot listen on {addr} again: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
        };
        loop {
            tokio::select! {
                r = l.accept() => if let Ok((client, _)) = r {
                    tokio::spawn(serve(client, shared.clone()));
                },
                _ = down.wait_for(|d| *d) => break,
            }
        }
        drop(l);
    }
}

/// The query parameters of a control request.
fn query(target: &str) -> BTreeMap<String, String> {
    let q = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('=').map(|(k, v)| (k.to_string(), v.replace("%2F", "/"))))
        .collect()
}

fn apply(shared: &Shared, target: &str) -> Result<String, String> {
    let q = query(target);
    let num = |k: &str, default: u64| -> Result<u64, String> {
        q.get(k).map_or(Ok(default), |v| v.parse().map_err(|_| format!("{k}={v} is not a number")))
    };
    let mode = match q.get("mode") {
        Some(m) => Mode::parse(m).ok_or_else(|| format!("unknown mode {m}"))?,
        None => Mode::Pass,
    };
    let setting = Setting {
        mode,
        every: num("every", 1)?.max(1),
        after: num("after", 0)?,
        limit: num("limit", 0)?,
        method: q.get("method").cloned(),
        path: q.get("path").cloned(),
    };
    let mut st = shared.state.lock().unwrap();
    st.setting = setting;
    st.matched = 0;
    st.injected = 0;
    drop(st);
    // Any setting but `down` brings a downed proxy back.
    shared.down.send_replace(false);
    Ok(format!("{:?}", shared.state.lock().unwrap().setting))
}

fn stats(shared: &Shared) -> String {
    let st = shared.state.lock().unwrap();
    serde_json::json!({
        "requests": st.requests,
        "faults": st.faults,
        "injected": st.faults.values().sum::<u64>(),
        "faulted": st.faulted,
        "down": *shared.down.borrow(),
    })
    .to_string()
}

async fn control_loop(l: TcpListener, shared: Conn) {
    loop {
        let Ok((mut s, _)) = l.accept().await else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let (_up, mut never) = watch::channel(false);
            let Some((head, _)) = read_request(&mut s, &mut buf, &mut never).await else { return };
            let path = head.second.split('?').next().unwrap_or_default().to_string();
            let (status, body) = match path.as_str() {
                "/set" => match apply(&shared, &head.second) {
                    Ok(b) => ("200 OK", b),
                    Err(e) => ("400 Bad Request", e),
                },
                "/stats" => ("200 OK", stats(&shared)),
                _ => ("404 Not Found", "use /set or /stats".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let (listener, control) =
            match (TcpListener::bind(args.listen).await, TcpListener::bind(args.control).await) {
                (Ok(l), Ok(c)) => (l, c),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("fault-proxy: cannot listen on {} / {}: {e}", args.listen, args.control);
                    return ExitCode::from(1);
                }
            };
        let setting = Setting {
            mode: args.mode,
            every: args.every.max(1),
            after: args.after,
            limit: args.limit,
            method: None,
            path: None,
        };
        let state = State {
            setting,
            matched: 0,
            injected: 0,
            requests: 0,
            faults: BTreeMap::new(),
            faulted: Vec::new(),
            rng: args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            down: watch::channel(false).0,
            upstream: args.upstream,
        });
        println!("listening on {}", listener.local_addr().expect("bound"));
        println!("control on {}", control.local_addr().expect("bound"));
        tokio::spawn(control_loop(control, shared.clone()));
        accept_loop(listener, shared).await;
        ExitCode::SUCCESS
    })
}
