//! Secrets at rest: region storage keys sealed with AES-256-GCM, node API secrets kept
//! only as SHA-256 hashes, user passwords as Argon2id hashes.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vox_domain::{Error, Result, ids};

const SEALED_PREFIX: &str = "v1:";
const NODE_SECRET_PREFIX: &str = "vxn";

/// The master key that seals storage secrets. The region id is the associated data, so a
/// sealed secret copied onto another region does not open.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn new(key: &[u8; 32]) -> Self {
        MasterKey { cipher: Aes256Gcm::new(key.into()) }
    }

    pub fn seal(&self, plaintext: &str, region_id: &str) -> Result<String> {
        let mut nonce = [0u8; 12];
        rand::fill(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: region_id.as_bytes() })
            .map_err(|_| Error::internal("seal storage secret"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("{SEALED_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(out)))
    }

    /// Opens a sealed secret (for the services that must use it, never for an API reply).
    pub fn open(&self, sealed: &str, region_id: &str) -> Result<String> {
        let body =
            sealed.strip_prefix(SEALED_PREFIX).ok_or_else(|| Error::internal("sealed secret has an unknown format"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| Error::internal("sealed secret is not base64"))?;
        if bytes.len() < 12 + 16 {
            return Err(Error::internal("sealed secret is truncated"));
        }
        let (nonce, ct) = bytes.split_at(12);
        let pt = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: region_id.as_bytes() })
            .map_err(|_| Error::internal("sealed secret does not open with this master key and region"))?;
        String::from_utf8(pt).map_err(|_| Error::internal("sealed secret is not UTF-8"))
    }
}

/// A new node API secret, `vxn.<node id>.<32 random characters>` (160 bits): the node id
/// inside lets the control plane find the hash to check without a scan.
/// The signer of cluster tokens: an Ed25519 key whose seed is HMAC-SHA256(master key,
/// label), so every voxbridge instance with the same master key signs with the same key and
/// the key says nothing about the master key.
pub fn cluster_token_signer(master_key: &[u8; 32]) -> Result<vox_node::tokens::TokenSigner> {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master_key).map_err(|_| Error::internal("derive token key"))?;
    mac.update(b"vox cluster token key v1");
    let seed: [u8; 32] = mac.finalize().into_bytes().into();
    vox_node::tokens::TokenSigner::from_seed(&seed)
}

pub fn new_node_secret(node_id: &str) -> String {
    format!("{NODE_SECRET_PREFIX}.{node_id}.{}", ids::random_token(32))
}

/// The node id a presented secret claims, if it has the node-secret shape.
pub fn node_id_of_secret(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(NODE_SECRET_PREFIX)?.strip_prefix('.')?;
    let (id, random) = rest.split_once('.')?;
    (ids::has_prefix(id, ids::NODE) && random.len() == 32).then_some(id)
}

/// Hex SHA-256: node secrets are long and random, so a fast hash is enough.
pub fn hash_secret(secret: &str) -> String {
    format!("{:x}", Sha256::digest(secret.as_bytes()))
}

pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::internal(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("hash password: {e}")))
}

pub fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash to verify against when the user does not exist, so a wrong email takes as long
/// as a wrong password.
pub fn decoy_password_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$ZGVjb3lkZWNveWRlY295$3Q0b2N6lXq9cR8G0y3m2bYy9m0Jb5m8Vq3Yh1tKZ0aQ"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_region() {
        let key = MasterKey::new(&[7u8; 32]);
        let sealed = key.seal("s3cr3t", "rg_a").unwrap();
        assert!(!sealed.contains("s3cr3t"));
        assert_ne!(sealed, key.seal("s3cr3t", "rg_a").unwrap(), "fresh nonce every time");
        assert_eq!(key.open(&sealed, "rg_a").unwrap(), "s3cr3t");
        assert!(key.open(&sealed, "rg_b").is_err());
        assert!(MasterKey::new(&[8u8; 32]).open(&sealed, "rg_a").is_err());
    }

    #[test]
    fn node_secrets_name_their_node_and_match_their_hash() {
        let id = ids::new_id(ids::NODE);
        let secret = new_node_secret(&id);
        assert_eq!(node_id_of_secret(&secret), Some(id.as_str()));
        let h = hash_secret(&secret);
        assert!(secret_matches(&secret, &h));
        assert!(!secret_matches(&format!("{secret}x"), &h));
        assert_eq!(node_id_of_secret("vxn.nd_x.y"), None);
        assert_eq!(node_id_of_secret("Bearer whatever"), None);
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(password_matches("correct horse battery", &h));
        assert!(!password_matches("wrong horse battery", &h));
        assert!(!password_matches("anything", decoy_password_hash()));
    }
}
