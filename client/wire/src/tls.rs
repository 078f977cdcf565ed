//! TLS 1.3 for every raftkv link (issue 11): loading PEM files, building rustls
//! configurations, the names certificates carry, and a stream that is either plain TCP
//! or TLS. Shared by the node (its three ports and its peer dialer) and the client.
//!
//! Names (subject alternative names, DNS type):
//! - a node's certificate names `raftkv-node-<id>` ([`node_name`]); a peer connection is
//!   verified against it in both directions, so a node id is bound to its certificate;
//! - a client's certificate names the client (e.g. `admin`); the node maps that name to
//!   a role.

pub mod certs;
mod reloading;
mod stream;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::RootCertStore;

pub use reloading::ReloadingTls;
pub use stream::Stream;

/// The DNS name a node's certificate carries and its peers verify: it binds node `id`
/// to the certificate.
pub fn node_name(id: u64) -> String {
    format!("raftkv-node-{id}")
}

/// The node id a name of [`node_name`]'s form stands for.
pub fn node_id_of_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("raftkv-node-")?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The three files of one TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This side's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The certificate authority (PEM) every peer's certificate must chain to.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// Files from three optional flags: all three or none.
    pub fn from_flags(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<Option<Self>, TlsError> {
        match (cert, key, ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(Self {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                ca: ca.to_path_buf(),
            })),
            _ => Err(TlsError::IncompleteFlags),
        }
    }

    /// These files as `--tls-cert`, `--tls-key`, `--tls-ca` arguments (the node and the
    /// CLI take the same three).
    pub fn flags(&self) -> Vec<String> {
        [
            ("--tls-cert", &self.cert),
            ("--tls-key", &self.key),
            ("--tls-ca", &self.ca),
        ]
        .into_iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
        .collect()
    }

    /// The files of `dir` as `raftkv certs init` writes them for `who` (`node-3`, `client`).
    pub fn in_dir(dir: &Path, who: &str) -> Self {
        Self {
            cert: dir.join(format!("{who}.crt")),
            key: dir.join(format!("{who}.key")),
            ca: dir.join("ca.crt"),
        }
    }
}

/// Why a TLS identity could not be loaded or used.
#[derive(Debug)]
pub enum TlsError {
    /// Some but not all of `--tls-cert`, `--tls-key`, `--tls-ca` were given.
    IncompleteFlags,
    Read {
        path: PathBuf,
        error: io::Error,
    },
    /// The file holds no PEM item of the kind expected.
    Pem {
        path: PathBuf,
        what: &'static str,
    },
    /// rustls refused the material (a key that does not match, a bad CA).
    Rustls {
        what: &'static str,
        error: rustls::Error,
    },
    Verifier(String),
    /// A name that is not a valid DNS name or IP address for verification.
    ServerName(String),
    /// Certificate generation (`raftkv certs init`).
    Generate(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IncompleteFlags => {
                write!(f, "TLS needs all three of --tls-cert, --tls-key and --tls-ca")
            }
            Self::Read { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            Self::Pem { path, what } => write!(f, "{} holds no PEM {what}", path.display()),
            Self::Rustls { what, error } => write!(f, "{what}: {error}"),
            Self::Verifier(why) => write!(f, "client certificate verifier: {why}"),
            Self::ServerName(name) => write!(f, "{name:?} is not a DNS name or IP address"),
            Self::Generate(why) => write!(f, "certificate generation failed: {why}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The crypto provider every config uses: ring, TLS 1.3 only.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        error,
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Pem {
        path: path.to_path_buf(),
        what: "private key",
    })
}

fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|error| TlsError::Rustls {
            what: "the CA certificate",
            error,
        })?;
    }
    Ok(Arc::new(roots))
}

/// A server config presenting `files`' certificate. With `mutual`, every client must
/// present a certificate that chains to `files.ca` (rustls refuses the handshake
/// otherwise: no certificate, another CA, expired).
pub fn server_config(files: &TlsFiles, mutual: bool) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TlsError::Rustls {
            what: "TLS 1.3 with ring",
            error,
        })?;
    let builder = if mutual {
        let verifier = WebPkiClientVerifier::builder_with_provider(load_roots(&files.ca)?, provider())
            .build()
            .map_err(|error| TlsError::Verifier(error.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|error| TlsError::Rustls {
            what: "the certificate and key",
            error,
        })?;
    Ok(Arc::new(config))
}

/// A client config that trusts `files.ca` and presents `files`' certificate.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TlsError::Rustls {
            what: "TLS 1.3 with ring",
            error,
        })?
        .with_root_certificates(load_roots(&files.ca)?)
        .with_client_auth_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|error| TlsError::Rustls {
            what: "the certificate and key",
            error,
        })?;
    Ok(Arc::new(config))
}

/// The name to verify a server against: a DNS name or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| TlsError::ServerName(host.to_string()))
}

/// Whether `cert` (already verified against the CA by rustls) is valid for `name`.
pub fn certificate_names(cert: &CertificateDer<'_>, name: &str) -> bool {
    let Ok(end_entity) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(name) else {
        return false;
    };
    end_entity.verify_is_valid_for_subject_name(&name).is_ok()
}

/// The first DNS name of `cert`'s subject alternative names: a client's identity.
pub fn certificate_identity(cert: &CertificateDer<'_>) -> Option<String> {
    let end_entity = webpki::EndEntityCert::try_from(cert).ok()?;
    let name = end_entity.valid_dns_names().next()?;
    Some(name.to_string())
}

#[cfg(test)]
mod tests;
