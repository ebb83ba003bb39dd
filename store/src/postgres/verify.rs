//! The checks of a Postgres server's certificate short of `verify-full` (which is
//! rustls's own): `verify-ca` checks its chain up to a trusted CA but not the host name
//! it names; `prefer` and `require` without `sslrootcert` encrypt without checking it,
//! as libpq does. Either way the handshake's signatures are verified, so the session is
//! with the holder of the certificate's key.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

/// What is checked of the server's certificate.
#[derive(Debug)]
pub(super) struct ServerCheck {
    /// The trusted CAs its chain must lead to; none: the chain is not checked.
    roots: Option<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCheck {
    /// The chain up to one of `roots`, whatever host it names (`verify-ca`).
    pub fn chain(roots: RootCertStore, provider: Arc<CryptoProvider>) -> ServerCheck {
        ServerCheck {
            roots: Some(roots),
            provider,
        }
    }

    /// Nothing of the certificate: encryption alone (`prefer`, `require`).
    pub fn encryption_only(provider: Arc<CryptoProvider>) -> ServerCheck {
        ServerCheck {
            roots: None,
            provider,
        }
    }
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Some(roots) = &self.roots {
            verify_server_cert_signed_by_trust_anchor(
                &ParsedCertificate::try_from(end_entity)?,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
