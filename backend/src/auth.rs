//! Who is calling: a signed-in user (JWT access token), an integration's API key
//! (`vk.<id>.<secret>`) or a registered node (its API secret), all as `authorization:
//! Bearer <…>` metadata. Every RPC but Login needs one, and each RPC says which principals
//! it accepts.
//!
//! An API key acts as a user with the key's role. A key limited to one campaign is refused
//! by every RPC unless the RPC asks for the caller's [`Scope`] (the `*_in_scope` checks)
//! and keeps to it: what a new RPC forgets to scope stays closed to scoped keys.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use vox_domain::api_key::{self, ApiKey};
use vox_domain::node::{DesiredState, Node, NodeKind};
use vox_domain::user::{Role, User};
use vox_domain::{Error, Result};
use vox_store::Stores;

use crate::crypto;

mod node_credentials;

pub use node_credentials::{MAX_ENTRIES as MAX_CACHED_NODE_SECRETS, TTL as NODE_SECRET_CACHE_TTL};

/// The caller of an RPC.
#[derive(Debug, Clone)]
pub enum Principal {
    User(User),
    Node(Node),
}

impl Principal {
    /// How the audit log and call timelines name the caller.
    pub fn actor(&self) -> String {
        match self {
            Principal::User(u) if u.id.starts_with(api_key::ID_PREFIX) => format!("key:{}", u.id),
            Principal::User(u) => format!("user:{}", u.email),
            Principal::Node(n) => format!("node:{}", n.id),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    email: String,
    role: String,
    iat: i64,
    exp: i64,
    iss: String,
    /// The user's token generation when the token was issued; the token is refused once
    /// the stored generation moves on (a new password, role or account status). Tokens
    /// issued before the claim existed read as 0, the generation of unchanged users.
    #[serde(default)]
    generation: u64,
}

const ISSUER: &str = "voxbridge";

/// Issues and checks credentials.
#[derive(Clone)]
pub struct Auth {
    stores: Stores,
    encoding: EncodingKey,
    decoding: DecodingKey,
    token_ttl: Duration,
    /// Node secrets verified recently ([`node_credentials`]).
    nodes: Arc<Mutex<node_credentials::NodeCredentials>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(..)")
    }
}

impl Auth {
    pub fn new(stores: Stores, jwt_secret: &[u8], token_ttl: Duration) -> Self {
        let nodes = Arc::new(Mutex::new(node_credentials::NodeCredentials::new(stores.events.subscribe())));
        Auth {
            stores,
            encoding: EncodingKey::from_secret(jwt_secret),
            decoding: DecodingKey::from_secret(jwt_secret),
            token_ttl,
            nodes,
        }
    }

    /// An access token for `user`, and when it expires.
    pub fn issue(&self, user: &User, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>)> {
        let exp = now + self.token_ttl;
        let claims = Claims {
            sub: user.id.clone(),
            email: user.email.clone(),
            role: user.role.as_str().into(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            iss: ISSUER.into(),
            generation: user.token_generation,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::internal(format!("sign access token: {e}")))?;
        Ok((token, exp))
    }

    /// Identifies the caller from its `authorization` metadata. A key limited to one
    /// campaign is refused here: RPCs that keep to a campaign use the `*_in_scope` checks.
    pub async fn principal(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Principal> {
        let (principal, scope) = self.scoped_principal(metadata).await?;
        scope.unlimited()?;
        Ok(principal)
    }

    /// The caller and the campaign it is limited to.
    async fn scoped_principal(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(Principal, Scope)> {
        let token = self.token(metadata)?;
        if let Some(key_id) = api_key::id_of_secret(token) {
            let key = self.key_by_secret(key_id, token).await?;
            vox_telemetry::trace::attribute("api_key_id", key.id.as_str());
            let scope = Scope(key.campaign_id.clone());
            return Ok((Principal::User(key_user(&key)), scope));
        }
        Ok((self.unscoped_principal(token).await?, Scope(None)))
    }

    fn token<'m>(&self, metadata: &'m tonic::metadata::MetadataMap) -> Result<&'m str> {
        let header = metadata
            .get("authorization")
            .ok_or_else(|| {
                Error::unauthenticated(
                    "missing authorization metadata; send `authorization: Bearer <access token or node secret>`",
                )
            })?
            .to_str()
            .map_err(|_| Error::unauthenticated("authorization metadata is not text"))?;
        bearer(header)
            .ok_or_else(|| Error::unauthenticated("authorization must be `Bearer <access token or node secret>`"))
    }

    /// The key `secret` names, if the secret is right and the key not revoked.
    async fn valid_key(&self, key_id: &str, secret: &str) -> Result<ApiKey> {
        match self.stores.api_keys.get_api_key(key_id).await? {
            Some(k) if !k.is_revoked() && crypto::secret_matches(secret, &k.secret_hash) => Ok(k),
            _ => Err(Error::unauthenticated("the API key is not valid or was revoked; ask an admin for a new one")),
        }
    }

    /// [`Auth::valid_key`], recording the use (to the minute, so a busy integration does
    /// not write on every request).
    async fn key_by_secret(&self, key_id: &str, secret: &str) -> Result<ApiKey> {
        let key = self.valid_key(key_id, secret).await?;
        let now = Utc::now();
        if key.last_used_at.is_none_or(|t| now - t >= Duration::minutes(1))
            && let Err(e) = self.stores.api_keys.touch_api_key(&key.id, now).await
        {
            tracing::warn!(key_id = %key.id, error = %e.message, "could not record an API key's use");
        }
        Ok(key)
    }

    async fn unscoped_principal(&self, token: &str) -> Result<Principal> {
        if let Some(node_id) = crypto::node_id_of_secret(token) {
            let node = self.node_by_secret(node_id, token).await?;
            vox_telemetry::trace::attribute("node_id", node.id.as_str());
            return Ok(Principal::Node(node));
        }
        let claims = self
            .claims(token)
            .map_err(|_| Error::unauthenticated("the access token is invalid or expired; sign in again"))?;
        // The user is read on every call, so a disabled, deleted or changed account stops
        // its tokens at once rather than when they expire.
        match self.stores.users.get_user(&claims.sub).await? {
            Some(u) if u.disabled => Err(Error::unauthenticated("this account is disabled")),
            Some(u) if u.token_generation != claims.generation => Err(Error::unauthenticated(
                "the access token was revoked: the account's password, role or status changed; sign in again",
            )),
            Some(u) => Ok(Principal::User(u)),
            None => Err(Error::unauthenticated("this account no longer exists")),
        }
    }

    /// The node whose secret `headers` carry, if they carry a valid one (users' tokens and
    /// anything else: `None`). Admission uses it to give nodes their own capacity.
    pub async fn node_of(&self, headers: &axum::http::HeaderMap) -> Option<Node> {
        let token = header_bearer(headers)?;
        let node_id = crypto::node_id_of_secret(token)?;
        self.node_by_secret(node_id, token).await.ok()
    }

    /// True when `headers` carry a valid, unrevoked API key (one store read and a hash).
    /// Admission gives integrations users' capacity with it.
    pub async fn carries_api_key(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(token) = header_bearer(headers) else { return false };
        let Some(key_id) = api_key::id_of_secret(token) else { return false };
        self.valid_key(key_id, token).await.is_ok()
    }

    /// True when `headers` carry a user's access token with a good signature that has not
    /// expired (the account itself is checked by the handler). Cheap: no store lookup.
    pub fn carries_user_token(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(token) = header_bearer(headers) else { return false };
        self.claims(token).is_ok()
    }

    fn claims(&self, token: &str) -> jsonwebtoken::errors::Result<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map(|d| d.claims)
    }

    /// The node `secret` opens: from the recently verified secrets when there, otherwise
    /// read from the store, checked and remembered.
    async fn node_by_secret(&self, node_id: &str, secret: &str) -> Result<Node> {
        let hash = crypto::hash_secret(secret);
        let lock = || self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let generation = {
            let mut cache = lock();
            if let Some((node, renew)) = cache.get(&hash, node_id, Instant::now()) {
                if renew && cache.begin_refresh() {
                    self.renew_node_secrets();
                }
                return Ok(node);
            }
            cache.catch_up()
        };
        match self.stores.nodes.get_node(node_id).await? {
            Some(n) if bool::from(hash.as_bytes().ct_eq(n.secret_hash.as_bytes())) => {
                lock().remember(hash, n.clone(), generation, Instant::now());
                Ok(n)
            }
            _ => Err(Error::unauthenticated(
                "the node secret is not valid; copy it again from registration or rotate it",
            )),
        }
    }

    /// Says that the next `NodeChanged` of `node_id` published here reports its presence
    /// only (a heartbeat), so its verified secret stays (`node_credentials`).
    pub fn expect_presence_change(&self, node_id: &str) {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).expect_presence_change(node_id);
    }

    /// Renews the verified node secrets in the background from one read of every node
    /// (`node_credentials`): the lookups that started it are answered at once.
    fn renew_node_secrets(&self) {
        let (stores, cache) = (self.stores.clone(), Arc::clone(&self.nodes));
        tokio::spawn(async move {
            let read_at = Instant::now();
            let nodes = stores.nodes.list_nodes(&vox_store::NodeFilter::default()).await;
            if let Err(e) = &nodes {
                tracing::warn!(error = %e.message, "could not renew the verified node secrets; they expire as they are");
            }
            cache.lock().unwrap_or_else(|p| p.into_inner()).finish_refresh(nodes.as_deref().ok(), read_at);
        });
    }

    /// A user with at least `min` role.
    pub async fn user(&self, metadata: &tonic::metadata::MetadataMap, min: Role) -> Result<User> {
        match self.principal(metadata).await? {
            Principal::User(u) => require_role(u, min),
            Principal::Node(n) => Err(Error::permission_denied(format!(
                "node {} cannot call this; it needs a user with the {} role",
                n.id,
                min.as_str()
            ))),
        }
    }

    /// Any user, or a node of one of `kinds`.
    pub async fn reader(&self, metadata: &tonic::metadata::MetadataMap, kinds: &[NodeKind]) -> Result<Principal> {
        let p = self.principal(metadata).await?;
        if let Principal::Node(n) = &p {
            check_node(n, kinds)?;
        }
        Ok(p)
    }

    /// A node of one of `kinds` (no user).
    pub async fn node(&self, metadata: &tonic::metadata::MetadataMap, kinds: &[NodeKind]) -> Result<Node> {
        match self.principal(metadata).await? {
            Principal::Node(n) => check_node(&n, kinds).map(|()| n),
            Principal::User(u) => Err(Error::permission_denied(format!(
                "{} cannot call this; only nodes ({}) can",
                u.email,
                kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// A user with at least `min` role, or a node of one of `kinds`.
    pub async fn user_or_node(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        min: Role,
        kinds: &[NodeKind],
    ) -> Result<Principal> {
        match self.principal(metadata).await? {
            Principal::User(u) => require_role(u, min).map(Principal::User),
            Principal::Node(n) => check_node(&n, kinds).map(|()| Principal::Node(n)),
        }
    }

    /// [`Auth::reader`] for an RPC that keeps to the caller's [`Scope`].
    pub async fn reader_in_scope(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        kinds: &[NodeKind],
    ) -> Result<(Principal, Scope)> {
        let (p, scope) = self.scoped_principal(metadata).await?;
        if let Principal::Node(n) = &p {
            check_node(n, kinds)?;
        }
        Ok((p, scope))
    }

    /// [`Auth::user`] for an RPC that keeps to the caller's [`Scope`].
    pub async fn user_in_scope(&self, metadata: &tonic::metadata::MetadataMap, min: Role) -> Result<(User, Scope)> {
        match self.scoped_principal(metadata).await? {
            (Principal::User(u), scope) => Ok((require_role(u, min)?, scope)),
            (Principal::Node(n), _) => Err(Error::permission_denied(format!(
                "node {} cannot call this; it needs a user with the {} role",
                n.id,
                min.as_str()
            ))),
        }
    }

    /// [`Auth::user_or_node`] for an RPC that keeps to the caller's [`Scope`].
    pub async fn user_or_node_in_scope(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        min: Role,
        kinds: &[NodeKind],
    ) -> Result<(Principal, Scope)> {
        let (p, scope) = self.scoped_principal(metadata).await?;
        let p = match p {
            Principal::User(u) => require_role(u, min).map(Principal::User)?,
            Principal::Node(n) => check_node(&n, kinds).map(|()| Principal::Node(n))?,
        };
        Ok((p, scope))
    }
}

/// The campaign a caller is limited to: `None` for users, nodes and unscoped keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(Option<String>);

impl Scope {
    /// The one campaign the caller may see, if it is limited to one.
    pub fn campaign(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Ok when the caller may see a record of `campaign_id` (`None`: a record of no
    /// campaign, such as an inbound call, which a scoped key may not see). A record out of
    /// scope is NotFound, as if it did not exist: a scoped key learns nothing of others.
    pub fn check(&self, campaign_id: Option<&str>, what: &str, id: &str) -> Result<()> {
        match &self.0 {
            Some(scope) if campaign_id != Some(scope.as_str()) => Err(Error::not_found(what, id)),
            _ => Ok(()),
        }
    }

    /// Ok when the caller is not limited to a campaign.
    fn unlimited(&self) -> Result<()> {
        match &self.0 {
            Some(campaign) => Err(Error::permission_denied(format!(
                "this API key is limited to campaign {campaign}; it may read that campaign, its calls and \
                 events, cancel its calls, pause and resume it, add its numbers and edit its do-not-call \
                 list, nothing else"
            ))),
            None => Ok(()),
        }
    }
}

/// The user an API key acts as: its role, named `key:<name>` in messages; the audit log
/// and call timelines name it `key:<id>` ([`Principal::actor`]).
fn key_user(key: &ApiKey) -> User {
    User {
        id: key.id.clone(),
        email: format!("key:{}", key.name),
        password_hash: String::new(),
        role: key.role,
        disabled: false,
        token_generation: 0,
        created_at: key.created_at,
        updated_at: key.created_at,
    }
}

/// The bearer token of HTTP `headers`, if they carry one.
fn header_bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    bearer(headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?)
}

/// The token of an `authorization: Bearer <token>` value.
fn bearer(header: &str) -> Option<&str> {
    header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim)
}

fn require_role(u: User, min: Role) -> Result<User> {
    if u.role >= min {
        Ok(u)
    } else {
        Err(Error::permission_denied(format!(
            "this needs the {} role; {} is {}",
            min.as_str(),
            u.email,
            u.role.as_str()
        )))
    }
}

fn check_node(n: &Node, kinds: &[NodeKind]) -> Result<()> {
    if n.desired_state == DesiredState::Disabled {
        return Err(Error::permission_denied(format!("node {} is disabled", n.id)));
    }
    if !kinds.contains(&n.kind) {
        return Err(Error::permission_denied(format!("a {} node cannot call this", n.kind.as_str())));
    }
    Ok(())
}
