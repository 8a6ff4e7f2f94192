//! API keys: credentials for integrations (a CRM, a contact-centre's own system) that act
//! with a role, optionally only on one campaign, without a person's password.
//!
//! A key's secret is `vk.<key id>.<32 random characters>` (160 bits), shown once when the
//! key is created; the store keeps its SHA-256 (a long random secret needs no slow hash).
//! The id inside the secret lets voxbridge find the key with one read. A revoked key is
//! refused at once, and a key's `last_used_at` is kept to the minute.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::user::Role;
use crate::{Error, Result, ids};

/// The prefix of API key ids (`ak_…`).
pub const ID_PREFIX: &str = "ak";
/// The first part of every secret.
pub const SECRET_PREFIX: &str = "vk";
/// Random characters after the id.
const SECRET_RANDOM_LEN: usize = 32;
/// The longest key name.
pub const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    /// What the key is for, as the admin named it ("HubSpot sync").
    pub name: String,
    pub role: Role,
    /// The only campaign the key may see and act on; `None`: every campaign its role allows.
    pub campaign_id: Option<String>,
    /// Hex SHA-256 of the secret; never the secret.
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    /// "user:<email>" of the admin who created it.
    pub created_by: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// A new key (id and secret drawn here) and its secret, which is shown once and then
    /// only its hash is kept. `hash` is the store's hash of a secret.
    pub fn new(
        name: &str,
        role: Role,
        campaign_id: Option<String>,
        created_by: &str,
        now: DateTime<Utc>,
        hash: impl Fn(&str) -> String,
    ) -> Result<(ApiKey, String)> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::invalid("name", "required: what the key is for, e.g. \"HubSpot sync\""));
        }
        if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(Error::invalid("name", format!("at most {MAX_NAME_CHARS} characters, no control characters")));
        }
        if let Some(c) = &campaign_id
            && !ids::has_prefix(c, ids::CAMPAIGN)
        {
            return Err(Error::invalid("campaign_id", format!("{c:?} is not a campaign id (cp_…)")));
        }
        let id = ids::new_id(ID_PREFIX);
        let secret = format!("{SECRET_PREFIX}.{id}.{}", ids::random_token(SECRET_RANDOM_LEN));
        let key = ApiKey {
            id,
            name: name.to_string(),
            role,
            campaign_id,
            secret_hash: hash(&secret),
            created_at: now,
            created_by: created_by.to_string(),
            last_used_at: None,
            revoked_at: None,
        };
        Ok((key, secret))
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// How the audit log and call timelines name what the key did.
    pub fn actor(&self) -> String {
        format!("key:{}", self.id)
    }
}

impl From<&ApiKey> for vox_proto::backend::v1::ApiKey {
    fn from(k: &ApiKey) -> Self {
        vox_proto::backend::v1::ApiKey {
            id: k.id.clone(),
            name: k.name.clone(),
            role: k.role.to_proto() as i32,
            campaign_id: k.campaign_id.clone().unwrap_or_default(),
            created_at: Some(crate::time::to_proto(k.created_at)),
            created_by: k.created_by.clone(),
            last_used_at: k.last_used_at.map(crate::time::to_proto),
            revoked_at: k.revoked_at.map(crate::time::to_proto),
        }
    }
}

/// The key id a presented bearer claims, if it has the API-key shape.
pub fn id_of_secret(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(SECRET_PREFIX)?.strip_prefix('.')?;
    let (id, random) = rest.split_once('.')?;
    (ids::has_prefix(id, ID_PREFIX) && random.len() == SECRET_RANDOM_LEN).then_some(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use super::*;

    /// Stands in for the store's hash: a different text from the secret, one per secret.
    fn fake_hash(s: &str) -> String {
        s.chars().rev().collect()
    }

    #[test]
    fn a_new_key_carries_its_id_in_its_secret_and_keeps_only_the_hash() {
        let (key, secret) = ApiKey::new(" CRM ", Role::Operator, None, "user:a@b.c", Utc::now(), fake_hash).unwrap();
        assert_eq!(key.name, "CRM");
        assert_eq!(id_of_secret(&secret), Some(key.id.as_str()));
        assert_eq!(key.secret_hash, fake_hash(&secret));
        assert!(!key.secret_hash.is_empty() && !serde_json::to_string(&key).unwrap().contains(&secret));
        let (other, other_secret) = ApiKey::new("CRM", Role::Viewer, None, "x", Utc::now(), fake_hash).unwrap();
        assert_ne!((other.id, other_secret), (key.id, secret));
    }

    #[test]
    fn bad_input_names_the_field() {
        let now = Utc::now();
        let err = ApiKey::new("  ", Role::Admin, None, "x", now, fake_hash).unwrap_err();
        assert!(err.message.contains("name"), "{err:?}");
        let err = ApiKey::new(&"x".repeat(101), Role::Admin, None, "x", now, fake_hash).unwrap_err();
        assert!(err.message.contains("name"), "{err:?}");
        let err = ApiKey::new("ok", Role::Admin, Some("ca_1".into()), "x", now, fake_hash).unwrap_err();
        assert!(err.message.contains("campaign_id"), "{err:?}");
    }

    #[test]
    fn only_key_shaped_bearers_name_a_key() {
        assert_eq!(
            id_of_secret("vk.ak_0123456789abcdef.0123456789abcdefghjkmnpqrstvwxyz"),
            Some("ak_0123456789abcdef")
        );
        for not in ["", "vk.", "vk.ak_1.x", "vn.ak_0123456789abcdef.0123456789abcdefghjkmnpqrstvwxyz", "eyJhbGciOi.x.y"]
        {
            assert_eq!(id_of_secret(not), None, "{not}");
        }
    }
}
