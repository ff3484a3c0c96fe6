//! Test certificates made at test time with Debian's `openssl`: a CA and server certificates
//! signed by it, with the subject alternative names a test asks for.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Run, chown_to_pg};

/// Whether the `openssl` command is available.
pub fn have_openssl() -> bool {
    Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success())
}

fn openssl(dir: &Path, args: &[&str]) {
    let run = Run::of(Command::new("openssl").current_dir(dir).args(args));
    assert_eq!(run.code, 0, "openssl {args:?}: {}", run.stderr);
}

/// A test certificate authority in `dir`.
pub struct TestCa {
    dir: PathBuf,
    name: String,
    /// The CA certificate (PEM), for `sslrootcert`.
    pub cert: PathBuf,
}

/// A server certificate and key, readable only by PostgreSQL's user (the server insists).
pub struct ServerCert {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, mode 0600).
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name` (an EC P-256 key, self-signed, valid two days).
    pub fn new(dir: &Path, name: &str) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        let (key, cert) = (format!("{name}.key"), format!("{name}.crt"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &cert,
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        TestCa { dir: dir.to_path_buf(), name: name.to_string(), cert: dir.join(cert) }
    }

    /// A server certificate `file` for `san` (e.g. `IP:127.0.0.1,DNS:localhost`), signed with
    /// `digest` (`sha256`, `sha384`, ...).
    pub fn server_cert(&self, file: &str, san: &str, digest: &str) -> ServerCert {
        let (key, csr, cert, ext) =
            (format!("{file}.key"), format!("{file}.csr"), format!("{file}.crt"), format!("{file}.ext"));
        std::fs::write(self.dir.join(&ext), format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\n"))
            .unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={file}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{}.crt", self.name),
                "-CAkey",
                &format!("{}.key", self.name),
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                &format!("-{digest}"),
                "-extfile",
                &ext,
            ],
        );
        let key = self.dir.join(key);
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        chown_to_pg(&key);
        ServerCert { cert: self.dir.join(cert), key }
    }
}
