//! TLS to Postgres as libpq's `sslmode` and `sslrootcert` ask, over rustls (aws-lc-rs)
//! through tokio-postgres-rustls.
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | when the server offers it | not checked, unless `sslrootcert` is given: then its chain |
//! | `require` | always | as `prefer` |
//! | `verify-ca` | always | its chain, up to `sslrootcert` (else the system's CAs) |
//! | `verify-full` | always | its chain, and that it names the host of the URL |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the system's CAs.
//! libpq's `allow` is not taken (tokio-postgres has no such mode).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::url::take_params;
use super::verify::ServerCheck;

/// The parameter that names the mode.
const SSLMODE: &str = "sslmode";
/// The parameter that names the CAs.
const SSLROOTCERT: &str = "sslrootcert";

/// How a connection to Postgres uses TLS: libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never.
    Disable,
    /// When the server offers it; the certificate is checked only against a given
    /// `sslrootcert`.
    Prefer,
    /// Always; the certificate is checked only against a given `sslrootcert`.
    Require,
    /// Always, the certificate's chain checked up to a trusted CA; not its host name.
    VerifyCa,
    /// Always, the certificate's chain and host name checked.
    VerifyFull,
}

impl SslMode {
    /// Every mode, in order of strength.
    const ALL: [SslMode; 5] = [
        SslMode::Disable,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// The mode as the URL writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection without TLS is refused.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// What tokio-postgres is told: it negotiates TLS, the connector checks.
    fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose CAs the server's certificate is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Roots {
    /// None given: the system's, when the mode checks the chain.
    Unset,
    /// `sslrootcert=system`.
    System,
    /// `sslrootcert=PATH`.
    File(PathBuf),
}

/// The TLS settings of a Postgres URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// `sslmode`, `prefer` when not given.
    pub mode: SslMode,
    roots: Roots,
}

/// Why the TLS settings of a URL cannot be used.
#[derive(Debug)]
pub(crate) struct TlsSetupError {
    /// `sslmode` as the URL gives it.
    pub sslmode: String,
    /// What is wrong, and what to do.
    pub reason: String,
}

impl TlsSettings {
    /// `url` without `sslmode` and `sslrootcert`, for tokio-postgres to parse, and the
    /// settings they give.
    pub fn take_from(url: &str) -> Result<(String, TlsSettings), TlsSetupError> {
        let (rest, params) = take_params(url, &[SSLMODE, SSLROOTCERT]);
        let last = |key: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let sslmode = last(SSLMODE).unwrap_or(SslMode::Prefer.as_str());
        let mode = SslMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == sslmode)
            .ok_or_else(|| TlsSetupError {
                sslmode: sslmode.to_owned(),
                reason: format!(
                    "sslmode must be one of {}",
                    SslMode::ALL.map(SslMode::as_str).join(", ")
                ),
            })?;
        let roots = match last(SSLROOTCERT) {
            None | Some("") => Roots::Unset,
            Some("system") => Roots::System,
            Some(path) => Roots::File(PathBuf::from(path)),
        };
        Ok((rest, TlsSettings { mode, roots }))
    }

    /// The tokio-postgres config told whether to negotiate TLS.
    pub fn apply(&self, config: &mut tokio_postgres::Config) {
        config.ssl_mode(self.mode.negotiation());
    }

    /// The connector that makes each connection's TLS session and checks the server's
    /// certificate as the mode says; reads the CA file now.
    pub fn connector(&self) -> Result<MakeRustlsConnect, TlsSetupError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| self.error(format!("rustls refused its protocol versions: {e}")))?;
        let config = match (self.mode, &self.roots) {
            (SslMode::Disable, _) | (SslMode::Prefer | SslMode::Require, Roots::Unset) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ServerCheck::encryption_only(provider))),
            (SslMode::VerifyFull, _) => builder.with_root_certificates(self.roots()?),
            (SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, _) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ServerCheck::chain(
                    self.roots()?,
                    provider,
                ))),
        };
        Ok(MakeRustlsConnect::new(config.with_no_client_auth()))
    }

    /// The trusted CAs: the file's, else the system's.
    fn roots(&self) -> Result<RootCertStore, TlsSetupError> {
        match &self.roots {
            Roots::File(path) => self.file_roots(path),
            Roots::Unset | Roots::System => self.system_roots(),
        }
    }

    fn file_roots(&self, path: &Path) -> Result<RootCertStore, TlsSetupError> {
        let unreadable = |reason: String| {
            self.error(format!(
                "cannot read the CA certificates of sslrootcert={}: {reason}",
                path.display()
            ))
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| unreadable(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unreadable(e.to_string()))?;
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| unreadable(format!("a certificate in it is not a CA: {e}")))?;
        }
        if roots.is_empty() {
            return Err(unreadable("no certificate in it: give a PEM file".into()));
        }
        Ok(roots)
    }

    fn system_roots(&self) -> Result<RootCertStore, TlsSetupError> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
            return Err(self.error(format!(
                "no CA certificate found in the system's store ({}): give the CA that signed the server's certificate as sslrootcert=PATH",
                match errors.is_empty() {
                    true => "it is empty".to_owned(),
                    false => errors.join("; "),
                }
            )));
        }
        Ok(roots)
    }

    fn error(&self, reason: String) -> TlsSetupError {
        TlsSetupError {
            sslmode: self.mode.as_str().to_owned(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_and_roots_are_read_and_taken_out_of_the_url() {
        let (rest, settings) = TlsSettings::take_from(
            "postgres://m:pw@db/marie?sslmode=verify-ca&sslrootcert=/etc/ca.pem",
        )
        .expect("settings");
        assert_eq!(rest, "postgres://m:pw@db/marie");
        assert_eq!(settings.mode, SslMode::VerifyCa);
        assert_eq!(settings.roots, Roots::File("/etc/ca.pem".into()));
        let (_, default) = TlsSettings::take_from("host=db").expect("settings");
        assert_eq!(
            (default.mode, default.roots),
            (SslMode::Prefer, Roots::Unset)
        );
        let (_, system) = TlsSettings::take_from("host=db sslrootcert=system sslmode=verify-full")
            .expect("settings");
        assert_eq!(
            (system.mode, system.roots),
            (SslMode::VerifyFull, Roots::System)
        );
    }

    #[test]
    fn an_unknown_mode_or_an_unreadable_ca_file_is_refused_naming_it() {
        let error = TlsSettings::take_from("postgres://db/marie?sslmode=allow").expect_err("allow");
        assert_eq!(error.sslmode, "allow");
        assert!(error.reason.contains("verify-full"), "{}", error.reason);
        let (_, settings) =
            TlsSettings::take_from("host=db sslmode=verify-full sslrootcert=/nonexistent/ca.pem")
                .expect("settings");
        let error = settings.connector().err().expect("no CA file");
        assert_eq!(error.sslmode, "verify-full");
        assert!(
            error.reason.contains("sslrootcert=/nonexistent/ca.pem"),
            "{}",
            error.reason
        );
    }
}
