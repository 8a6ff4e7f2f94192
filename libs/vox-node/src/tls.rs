//! TLS on Vox's links: how a server serves HTTPS/gRPC-over-TLS from a certificate and
//! key on disk (re-read when either file changes, so a renewed certificate needs no
//! restart), and which CA a process trusts for the `https://` links it opens (voxbridge,
//! workers). Plain HTTP stays the default on one machine; across machines, call audio is
//! personal data and every link should carry `https://`.
//!
//! Servers serve through [`crate::server::serve`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;

/// A server's certificate chain and private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both or neither: `--tls-cert` without `--tls-key` (or the reverse) is a mistake
    /// worth stopping for. `what` names the flags in the error.
    pub fn from_flags(cert: Option<&Path>, key: Option<&Path>) -> anyhow::Result<Option<Self>> {
        match (cert, key) {
            (Some(c), Some(k)) => Ok(Some(TlsFiles { cert: c.to_path_buf(), key: k.to_path_buf() })),
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!("--tls-cert (VOX_TLS_CERT) is set but --tls-key (VOX_TLS_KEY) is not"),
            (None, Some(_)) => anyhow::bail!("--tls-key (VOX_TLS_KEY) is set but --tls-cert (VOX_TLS_CERT) is not"),
        }
    }

    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((m(&self.cert)?, m(&self.key)?))
    }
}

/// How often the certificate files are checked for a change.
const RELOAD_EVERY: Duration = Duration::from_secs(5);

fn install_crypto_provider() {
    // One process-wide provider (ring, already in the tree); a second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loads the certificate and key, and re-reads them whenever either file changes (a
/// bad new pair is logged and the old one kept, so a half-copied renewal breaks nothing).
pub(crate) async fn reloading(files: &TlsFiles) -> anyhow::Result<RustlsConfig> {
    install_crypto_provider();
    let config = RustlsConfig::from_pem_file(&files.cert, &files.key).await.with_context(|| {
        format!("load the TLS certificate {} and key {}", files.cert.display(), files.key.display())
    })?;
    let watched = config.clone();
    let files = files.clone();
    tokio::spawn(async move {
        let mut seen = files.modified();
        loop {
            tokio::time::sleep(RELOAD_EVERY).await;
            let now = files.modified();
            if now.is_none() || now == seen {
                continue;
            }
            match watched.reload_from_pem_file(&files.cert, &files.key).await {
                Ok(()) => {
                    tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
                    seen = now;
                }
                Err(e) => {
                    tracing::warn!(cert = %files.cert.display(), error = %e, "new TLS certificate not loaded; keeping the old one")
                }
            }
        }
    });
    Ok(config)
}

static TRUSTED_CA: OnceLock<tonic::transport::Certificate> = OnceLock::new();

/// Trusts the CA in `path` (PEM) for every `https://` gRPC link this process opens from
/// now on. Without it, `https://` links trust the public web roots.
pub fn trust_ca_file(path: &Path) -> anyhow::Result<()> {
    install_crypto_provider();
    let pem = std::fs::read(path).with_context(|| format!("read the CA certificate {}", path.display()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        anyhow::bail!("{} is not a PEM certificate (--tls-ca, VOX_TLS_CA)", path.display());
    }
    let _ = TRUSTED_CA.set(tonic::transport::Certificate::from_pem(pem));
    Ok(())
}

/// The client TLS settings for `https://` links.
pub(crate) fn client_config() -> tonic::transport::ClientTlsConfig {
    install_crypto_provider();
    let config = tonic::transport::ClientTlsConfig::new();
    match TRUSTED_CA.get() {
        Some(ca) => config.ca_certificate(ca.clone()),
        None => config.with_webpki_roots(),
    }
}
