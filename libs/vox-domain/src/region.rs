//! Regions and their object storage settings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vox_proto::backend::v1 as pb;

use crate::{Error, Result, time};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub id: String,
    pub name: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    pub storage: Option<RegionStorage>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Storage settings as stored: the secret key only as AES-256-GCM ciphertext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionStorage {
    pub endpoint_url: String,
    pub bucket: String,
    pub access_key: String,
    /// `v1:` + base64(nonce ‖ ciphertext); associated data is the region id.
    pub secret_key_ciphertext: Option<String>,
    pub use_ssl: bool,
    pub signing_region: String,
    pub force_path_style: bool,
}

/// Validated storage settings from a request; the secret still in clear, to be sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageInput {
    pub endpoint_url: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: Option<String>,
    pub use_ssl: bool,
    pub signing_region: String,
    pub force_path_style: bool,
}

/// A region name: 1-63 characters of lower-case letters, digits and dashes, e.g. `us-east-1`.
pub fn validate_name(field: &str, name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(name.to_string())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{name:?} is not a region name; use 1-63 lower-case letters, digits and dashes, like \"us-east-1\""
            ),
        ))
    }
}

/// An ISO 3166-1 alpha-2 code; case is normalised to upper.
pub fn validate_country(field: &str, country: &str) -> Result<String> {
    let c = country.trim().to_ascii_uppercase();
    if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(c)
    } else {
        Err(Error::invalid(field, format!("{country:?} is not a two-letter ISO 3166-1 country code such as \"US\"")))
    }
}

/// An http(s) URL with a host, as endpoints are given in node and storage settings.
pub fn validate_http_url(field: &str, url: &str) -> Result<String> {
    let url = url.trim();
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace) => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(Error::invalid(field, format!("{url:?} is not an http:// or https:// URL with a host"))),
    }
}

impl TryFrom<pb::RegionStorageInput> for StorageInput {
    type Error = Error;

    fn try_from(s: pb::RegionStorageInput) -> Result<Self> {
        let endpoint_url = validate_http_url("storage.endpoint_url", &s.endpoint_url)?;
        let bucket = s.bucket.trim().to_string();
        // S3 bucket naming: 3-63 of lower-case letters, digits, dots and dashes.
        if !(3..=63).contains(&bucket.len())
            || !bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return Err(Error::invalid(
                "storage.bucket",
                format!("{bucket:?} is not a bucket name; use 3-63 lower-case letters, digits, dots and dashes"),
            ));
        }
        if s.access_key.trim().is_empty() {
            return Err(Error::invalid("storage.access_key", "required"));
        }
        if s.secret_key.as_deref().is_some_and(str::is_empty) {
            return Err(Error::invalid("storage.secret_key", "empty; omit the field to keep the stored key"));
        }
        if s.use_ssl != endpoint_url.starts_with("https://") {
            return Err(Error::invalid(
                "storage.use_ssl",
                format!("is {} but endpoint_url {endpoint_url:?} says otherwise; use https:// with SSL", s.use_ssl),
            ));
        }
        let signing_region =
            if s.signing_region.trim().is_empty() { "us-east-1".into() } else { s.signing_region.trim().into() };
        Ok(StorageInput {
            endpoint_url,
            bucket,
            access_key: s.access_key.trim().to_string(),
            secret_key: s.secret_key,
            use_ssl: s.use_ssl,
            signing_region,
            force_path_style: s.force_path_style,
        })
    }
}

impl From<&Region> for pb::Region {
    fn from(r: &Region) -> Self {
        pb::Region {
            id: r.id.clone(),
            name: r.name.clone(),
            country: r.country.clone(),
            storage: r.storage.as_ref().map(|s| pb::RegionStorage {
                endpoint_url: s.endpoint_url.clone(),
                bucket: s.bucket.clone(),
                access_key: s.access_key.clone(),
                secret_key_set: s.secret_key_ciphertext.is_some(),
                use_ssl: s.use_ssl,
                signing_region: s.signing_region.clone(),
                force_path_style: s.force_path_style,
            }),
            created_at: Some(time::to_proto(r.created_at)),
            updated_at: Some(time::to_proto(r.updated_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> pb::RegionStorageInput {
        pb::RegionStorageInput {
            endpoint_url: "http://minio:9000/".into(),
            bucket: "recordings".into(),
            access_key: "AK".into(),
            secret_key: Some("SK".into()),
            use_ssl: false,
            signing_region: String::new(),
            force_path_style: true,
        }
    }

    #[test]
    fn storage_input_is_validated_field_by_field() {
        let ok = StorageInput::try_from(input()).unwrap();
        assert_eq!(ok.endpoint_url, "http://minio:9000");
        assert_eq!(ok.signing_region, "us-east-1");

        let err = StorageInput::try_from(pb::RegionStorageInput { bucket: "A".into(), ..input() }).unwrap_err();
        assert!(err.message.starts_with("storage.bucket:"), "{err}");
        let err = StorageInput::try_from(pb::RegionStorageInput { endpoint_url: "minio:9000".into(), ..input() })
            .unwrap_err();
        assert!(err.message.starts_with("storage.endpoint_url:"), "{err}");
        let err = StorageInput::try_from(pb::RegionStorageInput { use_ssl: true, ..input() }).unwrap_err();
        assert!(err.message.starts_with("storage.use_ssl:"), "{err}");
    }

    #[test]
    fn names_and_countries() {
        assert!(validate_name("name", "us-east-1").is_ok());
        assert!(validate_name("name", "US East").is_err());
        assert_eq!(validate_country("country", "om").unwrap(), "OM");
        assert!(validate_country("country", "Oman").is_err());
    }
}
