//! TLS client configuration shared by the parts that speak TLS themselves
//! (the MQTT connection, the https probe): rustls with the ring provider,
//! as the workspace builds it, and trust anchors from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Adds the certificates of the PEM file at `path` to `roots`. Fails, with a
/// message naming neither the key nor the path (the caller knows both), when
/// the file cannot be read, is not PEM, or holds no certificate.
pub fn add_pem_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    for cert in certs {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A client config trusting `roots`, with no client certificate.
pub fn client_config(roots: RootCertStore) -> Result<rustls::ClientConfig, String> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
}
