//! Users and roles.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vox_proto::backend::v1 as pb;

use crate::{Error, Result, time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Campaigns, calls, node lifecycle.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator, Role::Admin].into_iter().find(|r| r.as_str() == s)
    }

    pub fn from_proto(field: &str, v: i32) -> Result<Self> {
        match pb::Role::try_from(v) {
            Ok(pb::Role::Admin) => Ok(Role::Admin),
            Ok(pb::Role::Operator) => Ok(Role::Operator),
            Ok(pb::Role::Viewer) => Ok(Role::Viewer),
            _ => Err(Error::invalid(field, "ROLE_ADMIN, ROLE_OPERATOR or ROLE_VIEWER")),
        }
    }

    pub fn to_proto(self) -> pb::Role {
        match self {
            Role::Admin => pb::Role::Admin,
            Role::Operator => pb::Role::Operator,
            Role::Viewer => pb::Role::Viewer,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    /// Lower case.
    pub email: String,
    /// Argon2id PHC string; never the password.
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    pub fn is_active_admin(&self) -> bool {
        self.role == Role::Admin && !self.disabled
    }
}

impl From<&User> for pb::User {
    fn from(u: &User) -> Self {
        pb::User {
            id: u.id.clone(),
            email: u.email.clone(),
            role: u.role.to_proto() as i32,
            disabled: u.disabled,
            created_at: Some(time::to_proto(u.created_at)),
        }
    }
}

pub fn validate_email(field: &str, email: &str) -> Result<String> {
    let email = email.trim().to_ascii_lowercase();
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@') && !email.contains(char::is_whitespace)
        });
    if ok { Ok(email) } else { Err(Error::invalid(field, format!("{email:?} is not an email address"))) }
}

pub const MIN_PASSWORD_LEN: usize = 12;

pub fn validate_password(field: &str, password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(Error::invalid(field, format!("too short: at least {MIN_PASSWORD_LEN} characters")));
    }
    if n > 1024 {
        return Err(Error::invalid(field, "too long: at most 1024 characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_passwords() {
        assert_eq!(validate_email("email", " Ops@Example.com ").unwrap(), "ops@example.com");
        assert!(validate_email("email", "ops.example.com").is_err());
        assert!(validate_password("password", "short").unwrap_err().message.contains("at least 12"));
        assert!(validate_password("password", "long enough passphrase").is_ok());
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
    }
}
