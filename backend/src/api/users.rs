use std::sync::Arc;

use tonic::Request;
use vox_domain::user::{self, Role, User, UserChange};
use vox_domain::{Error, Result, ids, time};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::auth_service_server::AuthService;
use vox_proto::backend::v1::user_service_server::UserService;

use super::{RpcResult, reply, required_id};
use crate::auth::Principal;
use crate::bridge::Bridge;
use crate::crypto;

#[derive(Debug, Clone)]
pub struct Users(pub Arc<Bridge>);

/// Creates the first admin when there are no users yet. Returns the generated password
/// when none was configured, for the caller to show exactly once.
pub async fn ensure_admin(bridge: &Bridge) -> Result<Option<(String, String)>> {
    if bridge.stores.users.count_users().await? > 0 {
        return Ok(None);
    }
    let email = user::validate_email("admin email", &bridge.settings.admin_email)?;
    let (password, generated) = match &bridge.settings.admin_password {
        Some(p) => {
            user::validate_password("admin password", p)?;
            (p.clone(), false)
        }
        None => (ids::random_token(20), true),
    };
    let now = bridge.clock.now();
    let admin = User {
        id: ids::new_id(ids::USER),
        email: email.clone(),
        password_hash: bridge.passwords.hash(password.clone()).await?,
        role: Role::Admin,
        disabled: false,
        token_generation: 0,
        created_at: now,
        updated_at: now,
    };
    bridge.stores.users.insert_user(&admin).await?;
    bridge.stores.audit.append_audit(&bridge.audit("system", "user.create", &admin.id, "first admin")).await?;
    tracing::info!(email = %email, "created the first admin");
    Ok(generated.then_some((email, password)))
}

impl Users {
    async fn login(&self, req: Request<pb::LoginRequest>) -> Result<pb::LoginResponse> {
        let throttled = |(why, e): (crate::passwords::Throttled, Error)| {
            self.0.metrics.sign_ins_throttled.get_or_create(&vec![("reason", why.label().into())]).inc();
            e
        };
        // Counted before anything else: a throttled address costs no lookup and no hash.
        let client = self.client_address(&req).await?;
        self.0.passwords.sign_in_attempt(client).map_err(throttled)?;
        let r = req.into_inner();
        let email = r.email.trim().to_ascii_lowercase();
        let found = self.0.stores.users.get_user_by_email(&email).await?;
        let phc = found.as_ref().map_or(crypto::decoy_password_hash().to_string(), |u| u.password_hash.clone());
        let matches = self.0.passwords.matches(r.password, phc).await.map_err(throttled)?;
        let user = match found {
            Some(u) if matches && !u.disabled => u,
            _ => {
                tracing::info!(email = %email, "sign-in refused");
                return Err(Error::unauthenticated("wrong email or password"));
            }
        };
        let (token, expires) = self.0.auth.issue(&user, self.0.clock.now())?;
        Ok(pb::LoginResponse {
            access_token: token,
            expires_at: Some(time::to_proto(expires)),
            user: Some(pb::User::from(&user)),
        })
    }

    /// Whom a sign-in counts against: the TCP peer, or the client a gateway names (only a
    /// gateway signing with its node secret may name one).
    async fn client_address(&self, req: &Request<pb::LoginRequest>) -> Result<std::net::IpAddr> {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| Error::internal("the peer address of a sign-in is unknown"))?;
        let Some(named) = req.metadata().get(crate::passwords::CLIENT_ADDRESS) else { return Ok(peer) };
        match self.0.auth.principal(req.metadata()).await {
            Ok(Principal::Node(n))
                if n.kind == vox_domain::node::NodeKind::Gateway
                    && n.desired_state != vox_domain::node::DesiredState::Disabled =>
            {
                named
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| Error::invalid(crate::passwords::CLIENT_ADDRESS, "an IP address"))
            }
            _ => Err(Error::permission_denied(format!(
                "only an enabled gateway signing with its node secret may send {}",
                crate::passwords::CLIENT_ADDRESS
            ))),
        }
    }

    async fn create(&self, req: Request<pb::CreateUserRequest>) -> Result<pb::User> {
        let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
        let r = req.into_inner();
        let email = user::validate_email("email", &r.email)?;
        user::validate_password("password", &r.password)?;
        let role = Role::from_proto("role", r.role)?;
        let now = self.0.clock.now();
        let u = User {
            id: ids::new_id(ids::USER),
            email,
            password_hash: self.0.passwords.hash(r.password).await?,
            role,
            disabled: false,
            token_generation: 0,
            created_at: now,
            updated_at: now,
        };
        self.0.stores.users.insert_user(&u).await?;
        let actor = format!("user:{}", admin.email);
        self.0.stores.audit.append_audit(&self.0.audit(&actor, "user.create", &u.id, role.as_str())).await?;
        Ok(pb::User::from(&u))
    }

    async fn update(&self, req: Request<pb::UpdateUserRequest>) -> Result<pb::User> {
        let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
        let r = req.into_inner();
        let id = required_id("id", &r.id)?;
        let mut change = UserChange::default();
        let mut edited = Vec::new();
        if let Some(role) = r.role {
            let role = Role::from_proto("role", role)?;
            change.role = Some(role);
            edited.push(format!("role {}", role.as_str()));
        }
        if let Some(password) = r.password {
            user::validate_password("password", &password)?;
            change.password_hash = Some(self.0.passwords.hash(password).await?);
            edited.push("password".into());
        }
        if let Some(disabled) = r.disabled {
            change.disabled = Some(disabled);
            edited.push(if disabled { "disabled" } else { "enabled" }.into());
        }
        // Only the requested fields change, on the stored user, so this never undoes a
        // concurrent change of another field. A new password, role or status moves the
        // token generation on: the user's access tokens (the caller's own too) are refused
        // from the next call.
        let u = self.0.stores.users.change_user(&id, &change, self.0.clock.now()).await?;
        let edited = if edited.is_empty() { "nothing".to_string() } else { edited.join(", ") };
        let reason = format!("{edited}; token generation {}", u.token_generation);
        let actor = format!("user:{}", admin.email);
        self.0.stores.audit.append_audit(&self.0.audit(&actor, "user.update", &u.id, &reason)).await?;
        Ok(pb::User::from(&u))
    }
}

#[tonic::async_trait]
impl AuthService for Users {
    async fn login(&self, req: Request<pb::LoginRequest>) -> RpcResult<pb::LoginResponse> {
        reply("Login", Users::login(self, req).await)
    }

    async fn who_am_i(&self, req: Request<pb::WhoAmIRequest>) -> RpcResult<pb::User> {
        let r = async { Ok(pb::User::from(&self.0.auth.user(req.metadata(), Role::Viewer).await?)) };
        reply("WhoAmI", r.await)
    }

    async fn identify(&self, req: Request<pb::IdentifyRequest>) -> RpcResult<pb::Identity> {
        let r = async {
            let principal = match self.0.auth.principal(req.metadata()).await? {
                Principal::User(u) => pb::identity::Principal::User(pb::User::from(&u)),
                Principal::Node(n) => {
                    if n.desired_state == vox_domain::node::DesiredState::Disabled {
                        return Err(Error::permission_denied(format!("node {} is disabled", n.id)));
                    }
                    pb::identity::Principal::Node(pb::NodeIdentity {
                        id: n.id.clone(),
                        kind: n.kind.to_proto() as i32,
                        region_id: n.region_id.clone().unwrap_or_default(),
                    })
                }
            };
            Ok(pb::Identity { principal: Some(principal) })
        };
        reply("Identify", r.await)
    }
}

#[tonic::async_trait]
impl UserService for Users {
    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> RpcResult<pb::User> {
        reply("CreateUser", self.create(req).await)
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> RpcResult<pb::ListUsersResponse> {
        let r = async {
            self.0.auth.user(req.metadata(), Role::Admin).await?;
            let users = self.0.stores.users.list_users().await?;
            Ok(pb::ListUsersResponse { users: users.iter().map(pb::User::from).collect() })
        };
        reply("ListUsers", r.await)
    }

    async fn update_user(&self, req: Request<pb::UpdateUserRequest>) -> RpcResult<pb::User> {
        reply("UpdateUser", self.update(req).await)
    }

    async fn delete_user(&self, req: Request<pb::DeleteUserRequest>) -> RpcResult<pb::DeleteUserResponse> {
        let r = async {
            let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
            let id = required_id("id", &req.get_ref().id)?;
            self.0.stores.users.delete_user(&id).await?;
            let actor = format!("user:{}", admin.email);
            self.0.stores.audit.append_audit(&self.0.audit(&actor, "user.delete", &id, "")).await?;
            Ok(pb::DeleteUserResponse {})
        };
        reply("DeleteUser", r.await)
    }
}
