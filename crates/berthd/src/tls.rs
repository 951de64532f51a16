//! The node certificate: generated on first start under `ROOT/api/` (self-signed, key 0600),
//! its SHA-256 fingerprint written to `ROOT/api/cert.sha256` for clients to pin.

use crate::error::DaemonError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct NodeCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// Hex SHA-256 of the certificate's DER form, colon-free lower case.
    pub fingerprint: String,
    pub config: Arc<rustls::ServerConfig>,
}

fn tls(e: impl std::fmt::Display) -> DaemonError {
    DaemonError::Tls(e.to_string())
}

/// Loads the node certificate, generating it first when absent.
pub fn load_or_create(api_dir: &Path, extra_names: &[String]) -> Result<NodeCert, DaemonError> {
    let cert_path = api_dir.join("cert.pem");
    let key_path = api_dir.join("key.pem");
    if !cert_path.exists() || !key_path.exists() {
        generate(&cert_path, &key_path, extra_names)?;
    }
    // The key stays root-only whatever happened to it.
    berth_core::fsutil::ensure_mode(&key_path, 0o600).map_err(tls)?;
    let cert_pem = std::fs::read(&cert_path).map_err(|e| DaemonError::io(&cert_path, e))?;
    let key_pem = std::fs::read(&key_path).map_err(|e| DaemonError::io(&key_path, e))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| DaemonError::io(&cert_path, e))?;
    let first = certs
        .first()
        .ok_or_else(|| tls(format!("{}: no certificate", cert_path.display())))?;
    let fingerprint = crate::hex(&Sha256::digest(first.as_ref()));
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| DaemonError::io(&key_path, e))?
        .ok_or_else(|| tls(format!("{}: no private key", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let fp_path = api_dir.join("cert.sha256");
    berth_core::fsutil::atomic_write(&fp_path, format!("{fingerprint}\n").as_bytes(), 0o644)
        .map_err(tls)?;
    Ok(NodeCert {
        cert_path,
        key_path,
        fingerprint,
        config: Arc::new(config),
    })
}

fn generate(cert_path: &Path, key_path: &Path, extra: &[String]) -> Result<(), DaemonError> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(h) = nix_hostname() {
        names.push(h);
    }
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(tls)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "berthd node certificate");
    // Valid for ten years: clients pin the fingerprint rather than trusting the dates.
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(10 * 365 * 86400)).into();
    let key = rcgen::KeyPair::generate().map_err(tls)?;
    let cert = params.self_signed(&key).map_err(tls)?;
    berth_core::fsutil::atomic_write(key_path, key.serialize_pem().as_bytes(), 0o600)
        .map_err(tls)?;
    berth_core::fsutil::atomic_write(cert_path, cert.pem().as_bytes(), 0o644).map_err(tls)?;
    tracing::info!(cert = %cert_path.display(), "node certificate generated");
    Ok(())
}

fn nix_hostname() -> std::io::Result<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    let h = h.trim().to_string();
    if h.is_empty() || berth_api::validate::validate_hostname(&h).is_err() {
        return Err(std::io::Error::other("no usable hostname"));
    }
    Ok(h)
}
