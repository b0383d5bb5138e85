//! PostgreSQL over TLS (rustls, the TLS stack every other connection of RelayHub uses): the flags the api and the
//! audit writer take, and the connector their pools and dedicated connections use.

use crate::{Result, StoreError};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a service reaches PostgreSQL: plain by default, or TLS only (flatten into a service's clap config).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DbTls {
    /// Connect to PostgreSQL over TLS only, verifying the server's certificate and host name against the system's
    /// root certificates (or `--database-tls-ca`'s). Also on when the database URL says `sslmode=require`.
    #[arg(long, env = "RH_DATABASE_TLS", global = true)]
    pub database_tls: bool,

    /// PEM file of the CA that signed PostgreSQL's certificate; implies `--database-tls`.
    #[arg(long, env = "RH_DATABASE_TLS_CA", global = true)]
    pub database_tls_ca: Option<PathBuf>,
}

impl DbTls {
    /// TLS with the certificates of `ca` (a PEM file).
    pub fn with_ca(ca: impl Into<PathBuf>) -> Self {
        DbTls { database_tls: true, database_tls_ca: Some(ca.into()) }
    }

    /// The connector for `config`, whose `sslmode` it sets: `require` when TLS is on (a server without TLS, or
    /// with a certificate the roots do not vouch for, is refused), else `disable` (never `prefer`, which would
    /// try TLS with no roots to check it).
    pub fn connector(&self, config: &mut tokio_postgres::Config) -> Result<MakeRustlsConnect> {
        let on = self.database_tls || self.database_tls_ca.is_some() || config.get_ssl_mode() == SslMode::Require;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Config(format!("TLS: {e}")))?;
        if !on {
            config.ssl_mode(SslMode::Disable);
            return Ok(MakeRustlsConnect::new(
                builder.with_root_certificates(RootCertStore::empty()).with_no_client_auth(),
            ));
        }
        config.ssl_mode(SslMode::Require);
        let roots = self.roots()?;
        Ok(MakeRustlsConnect::new(builder.with_root_certificates(roots).with_no_client_auth()))
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        let bad = |what: &dyn std::fmt::Display| StoreError::Config(format!("database TLS CA: {what}"));
        match &self.database_tls_ca {
            Some(path) => {
                let certs =
                    CertificateDer::pem_file_iter(path).map_err(|e| bad(&format!("{}: {e}", path.display())))?;
                for cert in certs {
                    roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for cert in native.certs {
                    // One certificate the system store holds that rustls cannot parse does not spoil the others.
                    let _ = roots.add(cert);
                }
            }
        }
        if roots.is_empty() {
            return Err(bad(&"no CA certificates found"));
        }
        Ok(roots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn off_by_default_and_on_by_flag_or_url() {
        let mut plain = tokio_postgres::Config::from_str("postgres://u@h/db").unwrap();
        DbTls::default().connector(&mut plain).unwrap();
        assert_eq!(plain.get_ssl_mode(), SslMode::Disable);
        let mut required = tokio_postgres::Config::from_str("postgres://u@h/db?sslmode=require").unwrap();
        // On by the URL: the system's roots (none in a bare container is a clear error, not a plain connection).
        match DbTls::default().connector(&mut required) {
            Ok(_) => assert_eq!(required.get_ssl_mode(), SslMode::Require),
            Err(e) => assert!(e.to_string().contains("no CA certificates"), "{e}"),
        }
        let missing = DbTls::with_ca("/nonexistent/ca.pem").connector(&mut plain).err().expect("refused");
        assert!(missing.to_string().contains("/nonexistent/ca.pem"), "{missing}");
    }
}
