//! Cluster tokens: what proves one Vox process to another inside the cluster.
//!
//! voxbridge signs them with an Ed25519 key (a JWT with `alg: EdDSA`) that every instance
//! derives from the master key ([`TokenSigner`]); nodes check them with the public key
//! alone ([`TokenVerifier`]), fetched from voxbridge over their authenticated link
//! ([`ClusterKey`]). A node that can check a token cannot make one, so a worker that is
//! broken into cannot pose as a gateway to the other workers.
//!
//! Two kinds, told apart by audience:
//! * worker tokens ([`WORKER_AUDIENCE`]): "the bearer is gateway node X of region R",
//!   five minutes; workers serve only their bearer (and their own host).
//!   [`GatewayCredential`] keeps a fresh one and [`WorkerToken`] puts it on every request.
//! * stream tokens ([`STREAM_AUDIENCE`]): "this WebSocket may carry call C's audio", a
//!   minute; any gateway accepts them, so the gateway that opened a web session need not
//!   be the one the browser's stream reaches.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::metadata::{Ascii, MetadataValue};
use vox_domain::{Error, Result};
use vox_proto::backend::v1 as pb;

use crate::Bridge;

pub const ISSUER: &str = "voxbridge";
/// Worker tokens: the bearer is a gateway.
pub const WORKER_AUDIENCE: &str = "vox-worker";
/// Stream tokens: the bearer may stream one call's audio.
pub const STREAM_AUDIENCE: &str = "vox-stream";
/// Clock difference between machines tolerated when checking expiry, seconds.
const LEEWAY_SECONDS: u64 = 30;

/// A worker token's claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerClaims {
    pub iss: String,
    pub aud: String,
    /// The gateway node's id.
    pub sub: String,
    /// The gateway's region.
    pub region: String,
    pub iat: i64,
    pub exp: i64,
}

/// A stream token's claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamClaims {
    pub iss: String,
    pub aud: String,
    /// The call id.
    pub sub: String,
    /// Sample rate of the stream's 16-bit PCM.
    pub rate: u32,
    pub iat: i64,
    pub exp: i64,
}

/// The key's name in the tokens' `kid` header: the first 8 bytes of the public key.
fn key_id(public: &[u8]) -> String {
    public.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Signs cluster tokens (voxbridge only).
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    public: Vec<u8>,
    key_id: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSigner({})", self.key_id)
    }
}

impl TokenSigner {
    /// The signer whose Ed25519 private key is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self> {
        use ring::signature::KeyPair;
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| Error::internal("derive the cluster token key"))?;
        let public = pair.public_key().as_ref().to_vec();
        // PKCS#8 v2 (RFC 5958) of an Ed25519 key (RFC 8410): the form `EncodingKey` reads.
        let mut der =
            vec![0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        der.extend_from_slice(seed);
        der.extend_from_slice(&[0x81, 0x21, 0x00]);
        der.extend_from_slice(&public);
        Ok(TokenSigner { encoding: EncodingKey::from_ed_der(&der), key_id: key_id(&public), public })
    }

    /// The public half, as `ClusterService/GetTokenKey` answers it.
    pub fn token_key(&self) -> pb::TokenKey {
        pb::TokenKey { algorithm: "EdDSA".into(), public_key: self.public.clone(), key_id: self.key_id.clone() }
    }

    fn sign(&self, claims: &impl Serialize) -> Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| Error::internal(format!("sign token: {e}")))
    }

    /// A worker token for gateway `node_id` of `region`, and when it expires.
    pub fn worker_token(
        &self,
        node_id: &str,
        region: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<(String, DateTime<Utc>)> {
        let exp = now + ttl;
        let claims = WorkerClaims {
            iss: ISSUER.into(),
            aud: WORKER_AUDIENCE.into(),
            sub: node_id.into(),
            region: region.into(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
        };
        Ok((self.sign(&claims)?, exp))
    }

    /// A stream token for `call_id` at `rate` Hz, and when it expires.
    pub fn stream_token(
        &self,
        call_id: &str,
        rate: u32,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<(String, DateTime<Utc>)> {
        let exp = now + ttl;
        let claims = StreamClaims {
            iss: ISSUER.into(),
            aud: STREAM_AUDIENCE.into(),
            sub: call_id.into(),
            rate,
            iat: now.timestamp(),
            exp: exp.timestamp(),
        };
        Ok((self.sign(&claims)?, exp))
    }
}

/// Checks cluster tokens with voxbridge's public key.
#[derive(Clone)]
pub struct TokenVerifier {
    decoding: DecodingKey,
    key_id: String,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenVerifier({})", self.key_id)
    }
}

impl TokenVerifier {
    pub fn from_key(key: &pb::TokenKey) -> Result<Self> {
        if key.algorithm != "EdDSA" || key.public_key.len() != 32 {
            return Err(Error::invalid("token key", "expected a 32-byte Ed25519 (EdDSA) public key"));
        }
        Ok(TokenVerifier { decoding: DecodingKey::from_ed_der(&key.public_key), key_id: key_id(&key.public_key) })
    }

    fn check<T: serde::de::DeserializeOwned>(&self, token: &str, audience: &str) -> Result<T> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[audience]);
        v.leeway = LEEWAY_SECONDS;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<T>(token, &self.decoding, &v).map(|d| d.claims).map_err(|e| {
            Error::unauthenticated(match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired".to_string(),
                _ => format!("the token is not a valid {audience} token from this cluster's voxbridge"),
            })
        })
    }

    /// A worker token's claims, if it is valid and unexpired.
    pub fn worker(&self, token: &str) -> Result<WorkerClaims> {
        self.check(token, WORKER_AUDIENCE)
    }

    /// A stream token's claims, if it is valid and unexpired.
    pub fn stream(&self, token: &str) -> Result<StreamClaims> {
        self.check(token, STREAM_AUDIENCE)
    }
}

/// voxbridge's public token key, fetched over the node's authenticated link and kept
/// fresh (a master-key rotation changes it). Until the first fetch succeeds there is
/// nothing to check tokens with, and callers refuse them.
#[derive(Debug, Clone, Default)]
pub struct ClusterKey(Arc<RwLock<Option<Arc<TokenVerifier>>>>);

impl ClusterKey {
    /// Fetches the key now and then every 10 minutes (every second until the first
    /// success), in a background task that ends with the runtime.
    pub fn fetch_from(bridge: Bridge) -> Self {
        let key = ClusterKey::default();
        let shared = key.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                let wait = match bridge.cluster().get_token_key(pb::GetTokenKeyRequest {}).await {
                    Ok(k) => match TokenVerifier::from_key(&k.into_inner()) {
                        Ok(v) => {
                            *shared.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(v));
                            failing = false;
                            Duration::from_secs(600)
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "voxbridge's token key is not usable");
                            Duration::from_secs(5)
                        }
                    },
                    Err(s) => {
                        if !failing {
                            tracing::warn!(code = ?s.code(), error = s.message(), "cannot fetch the cluster token key from voxbridge; retrying");
                            failing = true;
                        }
                        Duration::from_secs(1)
                    }
                };
                tokio::time::sleep(wait).await;
            }
        });
        key
    }

    /// A key known up front (tests, and a worker given the key by its operator).
    pub fn fixed(verifier: TokenVerifier) -> Self {
        ClusterKey(Arc::new(RwLock::new(Some(Arc::new(verifier)))))
    }

    /// The current verifier, once fetched.
    pub fn verifier(&self) -> Option<Arc<TokenVerifier>> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// A gateway's worker token, renewed in the background well before it expires.
#[derive(Debug, Clone, Default)]
pub struct GatewayCredential(Arc<RwLock<Option<MetadataValue<Ascii>>>>);

impl GatewayCredential {
    /// Asks voxbridge for a token now and again when a third of its life is left (every
    /// second while voxbridge does not answer).
    pub fn renew_from(bridge: Bridge) -> Self {
        let cred = GatewayCredential::default();
        let shared = cred.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                let wait = match bridge.cluster().issue_worker_token(pb::IssueWorkerTokenRequest {}).await {
                    Ok(t) => {
                        let t = t.into_inner();
                        match format!("Bearer {}", t.token).parse::<MetadataValue<Ascii>>() {
                            Ok(v) => {
                                *shared.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(v);
                                failing = false;
                                let left =
                                    t.expires_at.map(|e| e.seconds - Utc::now().timestamp()).unwrap_or(60).max(3);
                                Duration::from_secs(u64::try_from(left / 3).unwrap_or(1).max(1))
                            }
                            Err(_) => Duration::from_secs(5),
                        }
                    }
                    Err(s) => {
                        if !failing {
                            tracing::warn!(code = ?s.code(), error = s.message(), "cannot get a worker token from voxbridge; retrying");
                            failing = true;
                        }
                        Duration::from_secs(1)
                    }
                };
                tokio::time::sleep(wait).await;
            }
        });
        cred
    }

    /// True once a token is at hand.
    pub fn ready(&self) -> bool {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }

    /// The interceptor that puts the current token on every request to a worker.
    pub fn interceptor(&self) -> WorkerToken {
        WorkerToken(self.clone())
    }
}

/// Adds the gateway's current worker token to every request; without one yet the
/// request fails UNAVAILABLE on this side (the caller tries again or elsewhere).
#[derive(Debug, Clone)]
pub struct WorkerToken(GatewayCredential);

impl tonic::service::Interceptor for WorkerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        let token = self.0.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match token {
            Some(v) => {
                req.metadata_mut().insert("authorization", v);
                vox_telemetry::trace::inject(req.metadata_mut());
                Ok(req)
            }
            None => Err(tonic::Status::unavailable("this gateway has no worker token from voxbridge yet")),
        }
    }
}

/// The bearer token of a request's `authorization` metadata, if any.
pub fn bearer(metadata: &tonic::metadata::MetadataMap) -> Option<&str> {
    let v = metadata.get("authorization")?.to_str().ok()?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pair(seed: u8) -> (TokenSigner, TokenVerifier) {
        let signer = TokenSigner::from_seed(&[seed; 32]).unwrap();
        let verifier = TokenVerifier::from_key(&signer.token_key()).unwrap();
        (signer, verifier)
    }

    #[test]
    fn worker_tokens_check_with_the_public_key_only() {
        let (signer, verifier) = pair(7);
        let (token, _) = signer.worker_token("nd_gw", "rg_east", Utc::now(), chrono::Duration::minutes(5)).unwrap();
        let claims = verifier.worker(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.region.as_str()), ("nd_gw", "rg_east"));
        // The same seed gives the same key: every voxbridge instance signs alike.
        assert_eq!(TokenSigner::from_seed(&[7; 32]).unwrap().token_key(), signer.token_key());
    }

    #[test]
    fn wrong_key_wrong_audience_expired_and_tampered_tokens_are_refused() {
        let (signer, verifier) = pair(7);
        let (_, other) = pair(8);
        let now = Utc::now();
        let (token, _) = signer.worker_token("nd_gw", "rg", now, chrono::Duration::minutes(5)).unwrap();
        assert!(other.worker(&token).is_err(), "another cluster's key");
        assert!(verifier.stream(&token).is_err(), "a worker token is not a stream token");
        let (old, _) =
            signer.worker_token("nd_gw", "rg", now - chrono::Duration::hours(1), chrono::Duration::minutes(5)).unwrap();
        let err = verifier.worker(&old).unwrap_err();
        assert!(err.message.contains("expired"), "{err}");
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[1] = parts[1].replacen('e', "f", 1);
        assert!(verifier.worker(&parts.join(".")).is_err(), "claims changed after signing");
        let (stream, _) = signer.stream_token("ca_1", 16000, now, chrono::Duration::seconds(60)).unwrap();
        let claims = verifier.stream(&stream).unwrap();
        assert_eq!((claims.sub.as_str(), claims.rate), ("ca_1", 16000));
        assert!(verifier.worker(&stream).is_err(), "a stream token does not open workers");
    }
}
