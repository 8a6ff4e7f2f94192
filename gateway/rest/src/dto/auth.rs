//! Sign-in and users.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vox_proto::backend::v1 as pb;

use super::{convert_all, known, time, wire_enum};
use crate::error::{ApiError, ApiResult};

wire_enum! {
    /// What a user may do.
    pub enum Role: pb::Role {
        /// Everything, including users, regions and node registration.
        Admin = Admin,
        /// Campaigns, calls, node lifecycle.
        Operator = Operator,
        /// Read only.
        Viewer = Viewer,
    }
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "admin@example.com")]
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").field("email", &self.email).finish_non_exhaustive()
    }
}

impl From<LoginRequest> for pb::LoginRequest {
    fn from(r: LoginRequest) -> Self {
        pb::LoginRequest { email: r.email, password: r.password }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<pb::User> for User {
    type Error = ApiError;

    fn try_from(u: pb::User) -> ApiResult<Self> {
        Ok(User {
            role: known(Role::from_proto(u.role), "user role")?,
            created_at: time(u.created_at, "user created_at")?,
            id: u.id,
            email: u.email,
            disabled: u.disabled,
        })
    }
}

/// A signed-in session: send `Authorization: Bearer <access_token>` on every other request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    pub user: User,
}

impl TryFrom<pb::LoginResponse> for LoginResponse {
    type Error = ApiError;

    fn try_from(r: pb::LoginResponse) -> ApiResult<Self> {
        let user = r.user.ok_or_else(|| ApiError::internal("voxbridge sent a login without its user"))?;
        Ok(LoginResponse {
            access_token: r.access_token,
            expires_at: time(r.expires_at, "expires_at")?,
            user: User::try_from(user)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

impl TryFrom<pb::ListUsersResponse> for UserList {
    type Error = ApiError;

    fn try_from(r: pb::ListUsersResponse) -> ApiResult<Self> {
        Ok(UserList { users: convert_all(r.users)? })
    }
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    pub email: String,
    /// At least 12 characters.
    pub password: String,
    pub role: Role,
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest").field("email", &self.email).field("role", &self.role).finish()
    }
}

impl From<CreateUserRequest> for pb::CreateUserRequest {
    fn from(r: CreateUserRequest) -> Self {
        pb::CreateUserRequest { email: r.email, password: r.password, role: r.role.to_proto() }
    }
}

/// Only the fields present change. The last active admin can be neither demoted nor disabled.
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct UpdateUserRequest {
    pub role: Option<Role>,
    pub password: Option<String>,
    pub disabled: Option<bool>,
}

impl std::fmt::Debug for UpdateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateUserRequest").field("role", &self.role).field("disabled", &self.disabled).finish()
    }
}

impl UpdateUserRequest {
    pub fn into_proto(self, id: String) -> pb::UpdateUserRequest {
        pb::UpdateUserRequest {
            id,
            role: self.role.map(Role::to_proto),
            password: self.password,
            disabled: self.disabled,
        }
    }
}
