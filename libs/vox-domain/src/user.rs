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
    /// Access tokens carry the generation they were issued under and are refused once it
    /// moves on, so a new password, role or account status ends every session at once
    /// (a counter, not an instant: a token issued in the same second as the change is
    /// refused too). Users stored before it existed read as generation 0.
    #[serde(default)]
    pub token_generation: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    pub fn is_active_admin(&self) -> bool {
        self.role == Role::Admin && !self.disabled
    }

    /// Whether replacing `before` with `self` must end the sessions signed in before: the
    /// password, the role or the account status changes.
    pub fn ends_sessions_of(&self, before: &User) -> bool {
        self.password_hash != before.password_hash || self.role != before.role || self.disabled != before.disabled
    }

    /// `self` as a store writes it over `before`: the token generation is the stored one,
    /// moved on by one when the change ends sessions. Stores apply this inside the update,
    /// so an update built from a stale copy can never bring revoked tokens back.
    pub fn stored_over(mut self, before: &User) -> User {
        self.token_generation = before.token_generation + u64::from(self.ends_sessions_of(before));
        self
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

/// What an admin changes on a user; `None` keeps the stored value. Stores apply it to the
/// user they hold, so a change of one field never undoes a concurrent change of another
/// (a password reset racing a disable leaves the account disabled).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChange {
    pub role: Option<Role>,
    /// Argon2id PHC string of the new password.
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
}

impl UserChange {
    /// `before` with the change applied at `now`, as a store writes it (see
    /// [`User::stored_over`]).
    pub fn applied_to(&self, before: &User, now: DateTime<Utc>) -> User {
        let mut after = before.clone();
        if let Some(role) = self.role {
            after.role = role;
        }
        if let Some(hash) = &self.password_hash {
            after.password_hash.clone_from(hash);
        }
        if let Some(disabled) = self.disabled {
            after.disabled = disabled;
        }
        after.updated_at = now;
        after.stored_over(before)
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

    #[test]
    fn session_ending_changes_move_the_token_generation_on() {
        let now = chrono::Utc::now();
        let before = User {
            id: "us_1".into(),
            email: "ops@example.com".into(),
            password_hash: "old".into(),
            role: Role::Operator,
            disabled: false,
            token_generation: 4,
            created_at: now,
            updated_at: now,
        };
        // A copy that claims an older generation cannot lower the stored one.
        let renamed = User { email: "ops2@example.com".into(), token_generation: 0, ..before.clone() };
        assert_eq!(renamed.stored_over(&before).token_generation, 4);
        for after in [
            User { password_hash: "new".into(), ..before.clone() },
            User { role: Role::Viewer, ..before.clone() },
            User { disabled: true, ..before.clone() },
        ] {
            assert_eq!(after.stored_over(&before).token_generation, 5);
        }
        let old: User = serde_json::from_value(serde_json::json!({
            "id": "us_1", "email": "a@b.c", "password_hash": "x", "role": "viewer", "disabled": false,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(old.token_generation, 0, "users stored before the field existed");
    }
}
