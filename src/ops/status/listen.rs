//! `walvault status --listen ADDR`: `/metrics` (Prometheus's text format) and `/health` (200, or
//! 503 with the reasons) served from the last status, which a background loop refreshes every
//! `--refresh` (the repository part incrementally), so a scrape never waits for the repository.
//! When the health changes, an alert goes to `[notify]`'s webhook: a threshold crossed, and
//! recovered. A small HTTP/1.1 server of its own: GET and HEAD, one request per connection.

use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::model::{Status, StatusRequest};
use super::scan::Cache;
use super::{render, status};
use crate::config::Config;
use crate::notify::{Event, Origin};
use crate::repo::Storage;

/// The last status and its pages.
#[derive(Default)]
struct Shared {
    status: Option<Status>,
    metrics: String,
}

/// Serves until SIGINT/SIGTERM; an error only when `addr` cannot be listened on.
pub async fn listen(
    cfg: &Config,
    storage: &Storage,
    req: &StatusRequest,
    addr: &str,
    refresh: Duration,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(
        "serving /metrics and /health on {}, refreshing every {refresh:?}",
        listener.local_addr()?
    );
    let shared = Mutex::new(Shared::default());
    let refreshing = async {
        let mut cache = Cache::default();
        let mut healthy: Option<bool> = None;
        let origin = Origin::new(storage.url());
        loop {
            let s = status(cfg, storage, req, &mut cache).await;
            let now_healthy = s.health.healthy;
            let event = match (healthy, now_healthy) {
                (None | Some(true), false) => {
                    Some(Event::ThresholdCrossed { reasons: s.health.reasons.clone() })
                }
                (Some(false), true) => Some(Event::ThresholdRecovered),
                _ => None,
            };
            healthy = Some(now_healthy);
            let metrics = render::prometheus(&s);
            {
                let mut g = shared.lock().expect("not poisoned");
                g.metrics = metrics;
                g.status = Some(s);
            }
            if let Some(e) = event {
                tracing::info!("{}", e.summary());
                crate::notify::send::send(&cfg.notify, &origin, &e).await;
            }
            tokio::time::sleep(refresh).await;
        }
    };
    let serving = async {
        let mut connections = FuturesUnordered::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => connections.push(serve(stream, &shared)),
                    Err(e) => tracing::warn!("accept failed: {e}"),
                },
                Some(()) = connections.next(), if !connections.is_empty() => {}
            }
        }
    };
    tokio::select! {
        _ = refreshing => Ok(()),
        _ = serving => Ok(()),
        _ = crate::shutdown::signal() => {
            tracing::info!("stopping");
            Ok(())
        }
    }
}

/// Answers one request on `stream`.
async fn serve(mut stream: TcpStream, shared: &Mutex<Shared>) {
    let mut head = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return;
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (code, kind, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let g = shared.lock().expect("not poisoned");
            if g.status.is_some() {
                (200, "text/plain; version=0.0.4; charset=utf-8", g.metrics.clone())
            } else {
                (
                    503,
                    "text/plain; charset=utf-8",
                    "no status yet: the first refresh is running\n".to_string(),
                )
            }
        }
        ("GET" | "HEAD", "/health") => {
            let g = shared.lock().expect("not poisoned");
            match &g.status {
                Some(s) if s.health.healthy => (200, "text/plain; charset=utf-8", "healthy\n".to_string()),
                Some(s) => (
                    503,
                    "text/plain; charset=utf-8",
                    s.health.reasons.iter().map(|r| format!("{r}\n")).collect(),
                ),
                None => (
                    503,
                    "text/plain; charset=utf-8",
                    "no status yet: the first refresh is running\n".to_string(),
                ),
            }
        }
        ("GET" | "HEAD", "/") => {
            (200, "text/plain; charset=utf-8", "walvault status: /metrics, /health\n".to_string())
        }
        ("GET" | "HEAD", _) => {
            (404, "text/plain; charset=utf-8", "not found: /metrics, /health\n".to_string())
        }
        _ => (405, "text/plain; charset=utf-8", "only GET and HEAD\n".to_string()),
    };
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}
