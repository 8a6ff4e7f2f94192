//! A throwaway certificate authority for tests of Vox's TLS links: a CA certificate, and
//! server certificates it signs for loopback names, all written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A test CA whose certificate is `ca.pem` in its folder.
pub struct TestCa {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestCa({})", self.ca_pem.display())
    }
}

/// A server certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its files under `dir`.
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca_pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_pem, cert.pem())?;
        Ok(TestCa { dir: dir.to_path_buf(), issuer: Issuer::new(params, key), ca_pem })
    }

    /// A server certificate for `names` (DNS names or IP addresses), written to
    /// `<file>.pem` and `<file>.key` (replacing what is there).
    pub fn server_cert(&self, file: &str, names: &[&str]) -> anyhow::Result<ServerCert> {
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let out = ServerCert { cert: self.dir.join(format!("{file}.pem")), key: self.dir.join(format!("{file}.key")) };
        // The key first: a server that reloads on the certificate's change then finds both new.
        std::fs::write(&out.key, key.serialize_pem())?;
        std::fs::write(&out.cert, cert.pem())?;
        Ok(out)
    }
}
