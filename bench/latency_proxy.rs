//! `latency-proxy`: a TCP proxy for tests and benchmarks that adds network latency in user space
//! (kernel traffic shaping is not available on these machines). Every chunk of bytes is held for
//! half the configured round-trip time in each direction and forwarded in order, as a delay line:
//! latency is added, throughput is not limited. Many connections at once.
//!
//! ```text
//! latency-proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:9000 --rtt-ms 20
//! ```
//! Prints `listening on ADDR` on stdout once ready. Loopback only by intent: point it at servers
//! on this machine.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes read at a time from either side.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight per direction (bounds memory: 1024 × 64 KiB = 64 MiB at worst).
const IN_FLIGHT: usize = 1024;

/// Adds a fixed round-trip time to every TCP connection it forwards.
#[derive(Parser, Debug)]
#[command(name = "latency-proxy")]
struct Args {
    /// Address to listen on (port 0: pick a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Address to forward to.
    #[arg(long)]
    upstream: SocketAddr,
    /// Round-trip time to add, in milliseconds (half each way).
    #[arg(long)]
    rtt_ms: u64,
}

/// One direction: a reader stamps chunks with their arrival time, a writer releases each one
/// when its delay has passed. Order is kept; a closed read side is passed on as a shutdown.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Bytes>)>(IN_FLIGHT);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = tx.send((Instant::now() + delay, None)).await;
                    return;
                }
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, Some(Bytes::copy_from_slice(&buf[..n]))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            match chunk {
                Some(b) => {
                    if to.write_all(&b).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    };
    tokio::join!(reader, writer);
}

async fn serve(client: TcpStream, upstream: SocketAddr, delay: Duration) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // The connection set-up itself costs a round trip, as on a real network.
    tokio::time::sleep(delay * 2).await;
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::join!(pipe(cr, sw, delay), pipe(sr, cw, delay));
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
        let listener = match TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("latency-proxy: cannot listen on {}: {e}", args.listen);
                return ExitCode::from(1);
            }
        };
        println!("listening on {}", listener.local_addr().expect("bound"));
        let delay = Duration::from_millis(args.rtt_ms) / 2;
        loop {
            if let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, args.upstream, delay));
            }
        }
    })
}
