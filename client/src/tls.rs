//! Mutual TLS between nodes and clients: rustls configurations built from PEM files.
//!
//! Every node presents a certificate signed by the cluster's CA and requires one from
//! its peer; a client without a certificate, or with one from another CA, is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The PEM files of one side of a mutual TLS link.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsFiles {
    /// This side's certificate chain.
    pub cert: Option<PathBuf>,
    /// This side's private key.
    pub key: Option<PathBuf>,
    /// The CA that signs the cluster's certificates.
    pub ca: PathBuf,
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The files do not make a valid configuration.
    #[error("invalid TLS setup: {0}")]
    Invalid(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |reason: String| TlsError::Read {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(e.to_string()))?;
    if certs.is_empty() {
        return Err(read("no certificate in it".into()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Invalid(format!("CA {}: {e}", ca.display())))?;
    }
    Ok(roots)
}

/// The acceptor of a node's cluster port: its certificate, and peers' certificates
/// required and checked against the CA.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let (Some(cert), Some(key_path)) = (&files.cert, &files.key) else {
        return Err(TlsError::Invalid(
            "a node needs tls.cert and tls.key".into(),
        ));
    };
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&files.ca)?), provider())
            .build()
            .map_err(|e| TlsError::Invalid(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert)?, key(key_path)?)
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The connector of a node or client: the peer's certificate checked against the CA,
/// and this side's certificate presented when it has one.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_root_certificates(roots(&files.ca)?);
    let config = match (&files.cert, &files.key) {
        (Some(cert), Some(key_path)) => builder
            .with_client_auth_cert(certs(cert)?, key(key_path)?)
            .map_err(|e| TlsError::Invalid(e.to_string()))?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name a peer's certificate must carry: the host part of `host:port`.
pub fn server_name(addr: &str) -> Result<ServerName<'static>, TlsError> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| TlsError::Invalid(format!("{host}: {e}")))
}
