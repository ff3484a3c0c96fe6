//! TLS with rustls (aws-lc-rs provider, chosen explicitly so no process-wide provider is needed)
//! for libpq's sslmodes, and the `tls-server-end-point` channel-binding hash SCRAM-SHA-256-PLUS
//! needs.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::Digest;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::error::ReplicationError;
use super::options::{ConnectOptions, RootCert, SslMode};

/// How the server certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Not at all (sslmode prefer/require without a root certificate file).
    Nothing,
    /// The chain must lead to a trusted root; the name is not checked.
    Chain,
    /// Chain and host name.
    Full,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_err(m: impl Into<String>) -> ReplicationError {
    ReplicationError::Tls(m.into())
}

fn load_roots(root: &RootCert) -> Result<RootCertStore, ReplicationError> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    tls_err(format!("could not read root certificate file \"{}\": {e}", path.display()))
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(tls_err(format!(
                    "no usable certificate in root certificate file \"{}\"",
                    path.display()
                )));
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(tls_err("sslrootcert=system: no certificates in the system trust store"));
            }
        }
    }
    Ok(store)
}

/// The rustls configuration for `opts`' sslmode and root certificates.
pub fn client_config(opts: &ConnectOptions) -> Result<Arc<ClientConfig>, ReplicationError> {
    let root_exists = match &opts.sslrootcert {
        Some(RootCert::File(p)) => p.exists(),
        Some(RootCert::System) => true,
        None => false,
    };
    let check = match opts.sslmode {
        SslMode::Disable => return Err(tls_err("TLS asked for with sslmode=disable")),
        // libpq: with a root certificate file present, require (and prefer) verify the chain.
        SslMode::Prefer | SslMode::Require if root_exists => Check::Chain,
        SslMode::Prefer | SslMode::Require => Check::Nothing,
        SslMode::VerifyCa => Check::Chain,
        SslMode::VerifyFull => Check::Full,
    };
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = if check == Check::Nothing {
        Arc::new(AcceptAnyCertificate { provider: provider.clone() })
    } else {
        let root = match &opts.sslrootcert {
            Some(r @ RootCert::System) => r.clone(),
            Some(r @ RootCert::File(p)) if p.exists() => r.clone(),
            Some(RootCert::File(p)) => {
                return Err(tls_err(format!(
                    "root certificate file \"{}\" does not exist; provide the file or change sslmode to disable server certificate verification",
                    p.display()
                )));
            }
            None => {
                return Err(tls_err("no root certificate file (sslrootcert) for certificate verification"));
            }
        };
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(load_roots(&root)?), provider.clone())
                .build()
                .map_err(|e| tls_err(format!("certificate verifier: {e}")))?;
        if check == Check::Full { webpki } else { Arc::new(ChainOnly { inner: webpki }) }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Runs the TLS handshake on `tcp` (after the server answered `S` to SSLRequest) and returns the
/// stream and the channel-binding hash of the server's certificate.
pub async fn handshake(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    host: &str,
) -> Result<(TlsStream<TcpStream>, Option<Vec<u8>>), ReplicationError> {
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => {
            ServerName::try_from(host.to_string()).map_err(|e| tls_err(format!("host name {host:?}: {e}")))?
        }
    };
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| tls_err(format!("handshake with {host} failed: {e}")))?;
    let cb = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|leaf| end_point_hash(leaf));
    Ok((tls, cb))
}

/// The `tls-server-end-point` channel binding (RFC 5929): the certificate's hash with its
/// signature's hash algorithm, SHA-256 for MD5, SHA-1 and anything unrecognised.
pub fn end_point_hash(cert_der: &[u8]) -> Vec<u8> {
    match signature_hash(cert_der) {
        Some(SigHash::Sha384) => sha2::Sha384::digest(cert_der).to_vec(),
        Some(SigHash::Sha512) => sha2::Sha512::digest(cert_der).to_vec(),
        _ => sha2::Sha256::digest(cert_der).to_vec(),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum SigHash {
    Sha384,
    Sha512,
}

/// One DER element off the front of `b`: (tag, contents, rest).
fn der_element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, x| acc << 8 | usize::from(*x));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The hash of a certificate's `signatureAlgorithm`, for the algorithms that do not use SHA-256.
fn signature_hash(cert_der: &[u8]) -> Option<SigHash> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let (tag, cert, _) = der_element(cert_der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _tbs, rest) = der_element(cert)?;
    let (tag, alg, _) = der_element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, oid, _) = der_element(alg)?;
    if tag != OID {
        return None;
    }
    const RSA_PKCS1: [u8; 8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    match oid {
        [p @ .., 0x0c] if p == RSA_PKCS1 => Some(SigHash::Sha384),
        [p @ .., 0x0d] if p == RSA_PKCS1 => Some(SigHash::Sha512),
        [p @ .., 0x03] if p == ECDSA => Some(SigHash::Sha384),
        [p @ .., 0x04] if p == ECDSA => Some(SigHash::Sha512),
        _ => None,
    }
}

/// sslmode=verify-ca: the chain must be valid; a name mismatch is accepted. (webpki checks the
/// chain before the name, so `NotValidForName` means the chain was good.)
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// sslmode=prefer/require without a root certificate: encryption without authentication of
/// the server, as libpq does. Handshake signatures are still checked.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate-shaped DER: SEQUENCE { SEQUENCE {tbs}, SEQUENCE { OID }, BIT STRING }.
    fn fake_cert(oid: &[u8], tbs_len: usize) -> Vec<u8> {
        fn el(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            if body.len() < 0x80 {
                v.push(body.len() as u8);
            } else {
                v.extend([0x82, (body.len() >> 8) as u8, body.len() as u8]);
            }
            v.extend_from_slice(body);
            v
        }
        let tbs = el(0x30, &vec![0x05; tbs_len]);
        let alg = el(0x30, &[el(0x06, oid), vec![0x05, 0x00]].concat());
        let sig = el(0x03, &[0, 1, 2, 3]);
        el(0x30, &[tbs, alg, sig].concat())
    }

    #[test]
    fn channel_binding_hash_follows_the_signature_algorithm() {
        let rsa = |last: u8| [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, last];
        let ec = |last: u8| [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, last];
        for tbs_len in [10, 300] {
            assert_eq!(signature_hash(&fake_cert(&rsa(0x0b), tbs_len)), None);
            assert_eq!(signature_hash(&fake_cert(&rsa(0x0c), tbs_len)), Some(SigHash::Sha384));
            assert_eq!(signature_hash(&fake_cert(&rsa(0x0d), tbs_len)), Some(SigHash::Sha512));
            assert_eq!(signature_hash(&fake_cert(&ec(0x02), tbs_len)), None);
            assert_eq!(signature_hash(&fake_cert(&ec(0x03), tbs_len)), Some(SigHash::Sha384));
            assert_eq!(signature_hash(&fake_cert(&ec(0x04), tbs_len)), Some(SigHash::Sha512));
        }
        let c = fake_cert(&rsa(0x0c), 10);
        assert_eq!(end_point_hash(&c).len(), 48);
        assert_eq!(end_point_hash(&fake_cert(&rsa(0x0b), 10)).len(), 32);
        // Garbage never panics and falls back to SHA-256.
        for cut in 0..c.len() {
            assert_eq!(end_point_hash(&c[..cut]).len(), 32);
        }
    }
}
