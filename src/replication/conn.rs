//! The IO side of a connection: opening the socket (TCP or Unix, TLS negotiated with
//! SSLRequest), the startup packet, reading framed backend messages and writing frontend ones.
//! Session messages (ParameterStatus, NoticeResponse) are absorbed here.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::codec::{self, Backend, Fields};
use super::error::ReplicationError;
use super::options::{ConnectOptions, Endpoint, Host, Session, SslMode, socket_path};
use super::tls;

/// Bytes asked of the socket at a time.
const READ_SIZE: usize = 64 * 1024;

/// A byte stream to the server: TCP, TLS over TCP, or a Unix socket.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open connection before or after authentication.
pub struct Connection {
    io: Box<dyn Io>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Where it goes, for error messages.
    pub peer: String,
    /// ParameterStatus values seen so far.
    pub params: HashMap<String, String>,
    /// The `tls-server-end-point` hash when TLS is in use.
    pub channel_binding: Option<Vec<u8>>,
    /// Whether TLS is in use.
    pub tls: bool,
}

fn connect_error(addr: &str, e: io::Error) -> ReplicationError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => {
            ReplicationError::ConnectRefused { addr: addr.to_string() }
        }
        _ => ReplicationError::io(format!("could not connect to {addr}"), e),
    }
}

impl Connection {
    /// Opens the socket to `ep` and negotiates TLS as `opts.sslmode` says (Unix sockets never
    /// use TLS).
    pub async fn open(ep: &Endpoint, opts: &ConnectOptions) -> Result<Connection, ReplicationError> {
        let peer = ep.describe();
        match &ep.host {
            Host::Unix(dir) => {
                let path = socket_path(dir, ep.port);
                let s = UnixStream::connect(&path).await.map_err(|e| connect_error(&peer, e))?;
                Ok(Connection::new(Box::new(s), peer, None, false))
            }
            Host::Tcp { name, addr } => {
                let addrs: Vec<SocketAddr> = match addr {
                    Some(a) => vec![SocketAddr::new(*a, ep.port)],
                    None => tokio::net::lookup_host((name.as_str(), ep.port))
                        .await
                        .map_err(|e| {
                            ReplicationError::io(format!("could not resolve host name \"{name}\""), e)
                        })?
                        .collect(),
                };
                let mut last = None;
                let mut tcp = None;
                for a in addrs {
                    match TcpStream::connect(a).await {
                        Ok(s) => {
                            tcp = Some(s);
                            break;
                        }
                        Err(e) => last = Some(connect_error(&peer, e)),
                    }
                }
                let tcp = match tcp {
                    Some(t) => t,
                    None => {
                        return Err(last.unwrap_or_else(|| {
                            ReplicationError::io(
                                format!("could not resolve host name \"{name}\""),
                                io::Error::new(io::ErrorKind::NotFound, "no addresses"),
                            )
                        }));
                    }
                };
                tcp.set_nodelay(true)
                    .map_err(|e| ReplicationError::io(format!("socket option on {peer}"), e))?;
                Self::negotiate_tls(tcp, name, peer, opts).await
            }
        }
    }

    async fn negotiate_tls(
        mut tcp: TcpStream,
        host: &str,
        peer: String,
        opts: &ConnectOptions,
    ) -> Result<Connection, ReplicationError> {
        if opts.sslmode == SslMode::Disable {
            return Ok(Connection::new(Box::new(tcp), peer, None, false));
        }
        let config = tls::client_config(opts)?;
        let mut req = BytesMut::new();
        frontend::ssl_request(&mut req);
        tcp.write_all(&req)
            .await
            .map_err(|e| ReplicationError::io(format!("sending SSLRequest to {peer}"), e))?;
        // Exactly one byte: anything after it must come through TLS.
        let answer = tcp
            .read_u8()
            .await
            .map_err(|e| ReplicationError::io(format!("reading SSL answer from {peer}"), e))?;
        match answer {
            b'S' => {
                let (tls, cb) = tls::handshake(tcp, config, host).await?;
                Ok(Connection::new(Box::new(tls), peer, cb, true))
            }
            b'N' if opts.sslmode == SslMode::Prefer => Ok(Connection::new(Box::new(tcp), peer, None, false)),
            b'N' => Err(ReplicationError::Tls(format!(
                "server {peer} does not support TLS, but sslmode={:?} requires it",
                opts.sslmode
            ))),
            other => Err(ReplicationError::protocol(format!(
                "unexpected answer {:?} to SSLRequest from {peer}",
                char::from(other)
            ))),
        }
    }

    fn new(io: Box<dyn Io>, peer: String, channel_binding: Option<Vec<u8>>, tls: bool) -> Connection {
        Connection {
            io,
            rbuf: BytesMut::with_capacity(READ_SIZE),
            wbuf: BytesMut::new(),
            peer,
            params: HashMap::new(),
            channel_binding,
            tls,
        }
    }

    /// Sends what was written with [`Connection::write`].
    pub async fn flush(&mut self) -> Result<(), ReplicationError> {
        let r = async {
            self.io.write_all(&self.wbuf).await?;
            self.io.flush().await
        }
        .await;
        self.wbuf.clear();
        r.map_err(|e| ReplicationError::io(format!("sending to {}", self.peer), e))
    }

    /// Encodes a frontend message (which can only fail on an interior NUL) into the buffer.
    pub fn write(&mut self, f: impl FnOnce(&mut BytesMut) -> io::Result<()>) -> Result<(), ReplicationError> {
        f(&mut self.wbuf).map_err(|e| ReplicationError::InvalidArgument(e.to_string()))
    }

    /// Sends the startup packet: of a physical replication connection, or of an SQL session.
    pub async fn startup(&mut self, opts: &ConnectOptions) -> Result<(), ReplicationError> {
        let mut params: Vec<(&str, &str)> = vec![("user", opts.user.as_str())];
        match opts.session {
            Session::Replication => params.push(("replication", "true")),
            Session::Sql => params.push(("database", opts.database())),
        }
        params.push(("application_name", opts.application_name.as_str()));
        params.push(("client_encoding", "UTF8"));
        if let Some(o) = &opts.options {
            params.push(("options", o.as_str()));
        }
        self.write(|b| frontend::startup_message(params, b))?;
        self.flush().await
    }

    /// The next message of any kind.
    pub async fn recv_raw(&mut self) -> Result<Backend, ReplicationError> {
        loop {
            if let Some(m) = codec::decode(&mut self.rbuf)? {
                return Ok(m);
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_SIZE / 4 {
                self.rbuf.reserve(READ_SIZE);
            }
            let n = self
                .io
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|e| ReplicationError::io(format!("reading from {}", self.peer), e))?;
            if n == 0 {
                return Err(ReplicationError::io(
                    format!("reading from {}", self.peer),
                    io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection unexpectedly"),
                ));
            }
        }
    }

    /// The next message other than ParameterStatus (recorded) and NoticeResponse (logged).
    pub async fn recv(&mut self) -> Result<Message, ReplicationError> {
        loop {
            match self.recv_raw().await? {
                Backend::Message(Message::ParameterStatus(p)) => {
                    let (name, value) = p
                        .name()
                        .and_then(|n| Ok((n.to_string(), p.value()?.to_string())))
                        .map_err(|e| ReplicationError::protocol(format!("bad ParameterStatus: {e}")))?;
                    self.params.insert(name, value);
                }
                Backend::Message(Message::NoticeResponse(n)) => {
                    let f = Fields::read(n.fields())?;
                    if matches!(f.severity.as_str(), "WARNING") {
                        tracing::warn!(code = %f.code, "server {}: {}", f.severity, f.message);
                    } else {
                        tracing::info!(code = %f.code, "server {}: {}", f.severity, f.message);
                    }
                }
                Backend::Message(m) => return Ok(m),
                Backend::CopyBoth => return Err(ReplicationError::protocol("unexpected CopyBothResponse")),
                Backend::NegotiateProtocolVersion { newest_minor } => {
                    tracing::debug!("server supports protocol 3.{newest_minor}");
                }
            }
        }
    }

    /// Sends Terminate and closes the socket.
    pub async fn terminate(mut self) {
        frontend::terminate(&mut self.wbuf);
        let _ = self.flush().await;
        let _ = self.io.shutdown().await;
    }
}
