//! Authentication after the startup packet: trust, cleartext password, MD5 and SCRAM-SHA-256
//! (with `tls-server-end-point` channel binding over TLS when the server offers
//! SCRAM-SHA-256-PLUS), then the session parameters up to ReadyForQuery.

use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{self, ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use secrecy::{ExposeSecret, SecretString};

use super::codec;
use super::conn::Connection;
use super::error::ReplicationError;
use super::options::{ChannelBindingMode, ConnectOptions, Endpoint};
use super::passfile::{self, PassKey};

/// The password for `ep`: given, or from the passfile; `PasswordRequired` otherwise.
fn password(opts: &ConnectOptions, ep: &Endpoint) -> Result<SecretString, ReplicationError> {
    if let Some(p) = &opts.password {
        return Ok(p.clone());
    }
    let host = ep.passfile_host();
    let port = ep.port.to_string();
    let key = PassKey { host: &host, port: &port, database: opts.database(), user: &opts.user };
    opts.passfile
        .as_deref()
        .and_then(|f| passfile::lookup(f, key))
        .map(SecretString::from)
        .ok_or_else(|| ReplicationError::PasswordRequired { user: opts.user.clone() })
}

/// An ErrorResponse during authentication: class 28 is an authentication failure.
fn auth_error(body: &postgres_protocol::message::backend::ErrorResponseBody, user: &str) -> ReplicationError {
    match codec::server_error(body) {
        ReplicationError::Server { code, message, .. } if code.starts_with("28") => {
            ReplicationError::Auth { user: user.to_string(), code, message }
        }
        other => other,
    }
}

/// Runs the authentication exchange and reads the session start up to ReadyForQuery.
pub async fn authenticate(
    conn: &mut Connection,
    opts: &ConnectOptions,
    ep: &Endpoint,
) -> Result<(), ReplicationError> {
    let user = opts.user.as_str();
    let mut scram: Option<ScramSha256> = None;
    let mut used_channel_binding = false;
    loop {
        match conn.recv().await? {
            Message::AuthenticationOk => break,
            Message::AuthenticationCleartextPassword => {
                let pw = password(opts, ep)?;
                conn.write(|b| frontend::password_message(pw.expose_secret().as_bytes(), b))?;
                conn.flush().await?;
            }
            Message::AuthenticationMd5Password(body) => {
                let pw = password(opts, ep)?;
                let hash = md5_hash(user.as_bytes(), pw.expose_secret().as_bytes(), body.salt());
                conn.write(|b| frontend::password_message(hash.as_bytes(), b))?;
                conn.flush().await?;
            }
            Message::AuthenticationSasl(body) => {
                let mut plain = false;
                let mut plus = false;
                let mut mechanisms = body.mechanisms();
                while let Some(m) = mechanisms
                    .next()
                    .map_err(|e| ReplicationError::protocol(format!("bad SASL mechanisms: {e}")))?
                {
                    plain |= m == sasl::SCRAM_SHA_256;
                    plus |= m == sasl::SCRAM_SHA_256_PLUS;
                }
                let cb = conn
                    .channel_binding
                    .clone()
                    .filter(|_| opts.channel_binding != ChannelBindingMode::Disable);
                let (mechanism, binding) = match cb {
                    Some(hash) if plus => {
                        (sasl::SCRAM_SHA_256_PLUS, ChannelBinding::tls_server_end_point(hash))
                    }
                    _ if opts.channel_binding == ChannelBindingMode::Require => {
                        return Err(ReplicationError::UnsupportedAuth(
                            "SCRAM-SHA-256-PLUS (channel_binding=require, but the server or connection does not offer channel binding)".into(),
                        ));
                    }
                    _ if plain => (sasl::SCRAM_SHA_256, ChannelBinding::unsupported()),
                    _ => {
                        return Err(ReplicationError::UnsupportedAuth(
                            "SASL without SCRAM-SHA-256 (the server offered no mechanism this client knows)"
                                .into(),
                        ));
                    }
                };
                used_channel_binding = mechanism == sasl::SCRAM_SHA_256_PLUS;
                let pw = password(opts, ep)?;
                let s = ScramSha256::new(pw.expose_secret().as_bytes(), binding);
                conn.write(|b| frontend::sasl_initial_response(mechanism, s.message(), b))?;
                conn.flush().await?;
                scram = Some(s);
            }
            Message::AuthenticationSaslContinue(body) => {
                let s =
                    scram.as_mut().ok_or_else(|| ReplicationError::protocol("SASL continue without SASL"))?;
                s.update(body.data()).map_err(|e| ReplicationError::protocol(format!("SCRAM: {e}")))?;
                conn.write(|b| frontend::sasl_response(s.message(), b))?;
                conn.flush().await?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let s =
                    scram.as_mut().ok_or_else(|| ReplicationError::protocol("SASL final without SASL"))?;
                s.finish(body.data()).map_err(|e| {
                    ReplicationError::protocol(format!(
                        "SCRAM: the server's proof is invalid ({e}); is it the real server?"
                    ))
                })?;
            }
            Message::AuthenticationGss | Message::AuthenticationGssContinue(_) => {
                return Err(ReplicationError::UnsupportedAuth("GSSAPI".into()));
            }
            Message::AuthenticationSspi => return Err(ReplicationError::UnsupportedAuth("SSPI".into())),
            Message::AuthenticationKerberosV5 => {
                return Err(ReplicationError::UnsupportedAuth("Kerberos V5".into()));
            }
            Message::AuthenticationScmCredential => {
                return Err(ReplicationError::UnsupportedAuth("SCM credentials".into()));
            }
            Message::ErrorResponse(body) => return Err(auth_error(&body, user)),
            _ => return Err(ReplicationError::protocol("unexpected message during authentication")),
        }
    }
    if opts.channel_binding == ChannelBindingMode::Require && !used_channel_binding {
        return Err(ReplicationError::UnsupportedAuth(
            "channel binding (channel_binding=require, but the server authenticated without it)".into(),
        ));
    }
    loop {
        match conn.recv().await? {
            Message::BackendKeyData(_) => {}
            Message::ReadyForQuery(_) => return Ok(()),
            Message::ErrorResponse(body) => return Err(auth_error(&body, user)),
            _ => return Err(ReplicationError::protocol("unexpected message at session start")),
        }
    }
}
