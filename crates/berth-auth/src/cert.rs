//! The node certificate of the API: `api/cert.pem` (self-signed), `api/key.pem` (0600) and
//! the certificate's SHA-256 fingerprint `api/cert.sha256` for clients to pin. Made by
//! `berth node init` (so `node info` shows the fingerprint before berthd ever ran) and by
//! berthd when absent.

use crate::{AuthError, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Paths of a node's certificate files under `api_dir`.
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub fingerprint: PathBuf,
}

impl CertPaths {
    pub fn new(api_dir: &Path) -> Self {
        CertPaths {
            cert: api_dir.join("cert.pem"),
            key: api_dir.join("key.pem"),
            fingerprint: api_dir.join("cert.sha256"),
        }
    }
}

/// Largest accepted certificate or key file.
const MAX_PEM: u64 = 1 << 20;

fn internal(e: impl std::fmt::Display) -> AuthError {
    AuthError::Internal(e.to_string())
}

/// Makes the certificate when either file is missing, keeps the key root-only, and
/// (re)writes the fingerprint file. Returns the fingerprint (lower-case hex, no colons).
pub fn ensure(api_dir: &Path, extra_names: &[String]) -> Result<String> {
    let p = CertPaths::new(api_dir);
    if !p.cert.exists() || !p.key.exists() {
        generate(&p, extra_names)?;
    }
    berth_core::fsutil::ensure_mode(&p.key, 0o600).map_err(internal)?;
    let fp = fingerprint_of(&read_pem(&p.cert)?, &p.cert)?;
    berth_core::fsutil::atomic_write(&p.fingerprint, format!("{fp}\n").as_bytes(), 0o644)
        .map_err(internal)?;
    Ok(fp)
}

/// A PEM file read with a size bound.
pub fn read_pem(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| AuthError::io(path, e))?;
    let mut b = vec![];
    f.take(MAX_PEM + 1)
        .read_to_end(&mut b)
        .map_err(|e| AuthError::io(path, e))?;
    if b.len() as u64 > MAX_PEM {
        return Err(AuthError::Corrupt {
            path: path.into(),
            msg: "larger than 1 MiB".into(),
        });
    }
    Ok(b)
}

/// The SHA-256 of the first certificate's DER form in PEM text.
pub fn fingerprint_of(pem: &[u8], path: &Path) -> Result<String> {
    let first = rustls_pemfile::certs(&mut &pem[..])
        .next()
        .ok_or_else(|| AuthError::Corrupt {
            path: path.into(),
            msg: "no certificate".into(),
        })?
        .map_err(|e| AuthError::Corrupt {
            path: path.into(),
            msg: e.to_string(),
        })?;
    Ok(crate::hex(&Sha256::digest(first.as_ref())))
}

fn generate(p: &CertPaths, extra: &[String]) -> Result<()> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Some(h) = hostname() {
        names.push(h);
    }
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(internal)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "berthd node certificate");
    // Valid for ten years: clients pin the fingerprint rather than trusting the dates.
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(10 * 365 * 86400)).into();
    let key = rcgen::KeyPair::generate().map_err(internal)?;
    let cert = params.self_signed(&key).map_err(internal)?;
    // The key first: a certificate without its key would be regenerated anyway.
    berth_core::fsutil::atomic_write(&p.key, key.serialize_pem().as_bytes(), 0o600)
        .map_err(internal)?;
    berth_core::fsutil::atomic_write(&p.cert, cert.pem().as_bytes(), 0o644).map_err(internal)?;
    Ok(())
}

fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim().to_string();
    (!h.is_empty() && berth_api::validate::validate_hostname(&h).is_ok()).then_some(h)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_key_root_only_fingerprint_stable() {
        let d = tempfile::tempdir().unwrap();
        let fp = super::ensure(d.path(), &["node1.example.test".into()]).unwrap();
        assert_eq!(fp.len(), 64);
        let mode = std::fs::metadata(d.path().join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(d.path().join("cert.sha256")).unwrap(),
            format!("{fp}\n")
        );
        // A second call keeps the certificate.
        assert_eq!(super::ensure(d.path(), &[]).unwrap(), fp);
        // A garbage certificate is refused, not replaced silently.
        std::fs::write(d.path().join("cert.pem"), "junk").unwrap();
        assert!(super::ensure(d.path(), &[]).is_err());
    }
}
