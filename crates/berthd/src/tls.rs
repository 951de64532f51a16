//! The node certificate (`berth_auth::cert`: made by `berth node init`, or here when absent)
//! loaded into rustls.

use crate::error::DaemonError;
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

/// Loads the node certificate, generating it first when absent (`berth node init` makes it;
/// berthd does when a root predates that or the files were removed).
pub fn load_or_create(api_dir: &Path, extra_names: &[String]) -> Result<NodeCert, DaemonError> {
    let fingerprint = berth_auth::cert::ensure(api_dir, extra_names).map_err(tls)?;
    let paths = berth_auth::cert::CertPaths::new(api_dir);
    let (cert_path, key_path) = (paths.cert, paths.key);
    let cert_pem = berth_auth::cert::read_pem(&cert_path).map_err(tls)?;
    let key_pem = berth_auth::cert::read_pem(&key_path).map_err(tls)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| DaemonError::io(&cert_path, e))?;
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
    Ok(NodeCert {
        cert_path,
        key_path,
        fingerprint,
        config: Arc::new(config),
    })
}
