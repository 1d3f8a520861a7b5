//! TLS to PostgreSQL: rustls with the web PKI roots, plus an optional CA file for
//! servers with a private CA. `tls: require` never falls back to plain text.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sluice_connector_sdk::{ConnectorError, Result};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The certificates in the PEM file at `path`, or why there are none (the
/// user's to fix: a wrong path or file).
pub fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| ConnectorError::user(format!("cannot read {shown}")).with_source(e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ConnectorError::user(format!("{shown} is not a PEM certificate file")).with_source(e))?;
    if certs.is_empty() {
        return Err(ConnectorError::user(format!("{shown} holds no PEM certificate")));
    }
    Ok(certs)
}

/// A TLS connector trusting the web PKI roots and the certificates in `ca_file`.
pub fn connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for cert in read_ca(path)? {
            roots
                .add(cert)
                .map_err(|e| ConnectorError::user(format!("{}: {e}", path.display())))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::internal(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
