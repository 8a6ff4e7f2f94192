//! Who may use a worker. A worker holds live calls and moves them in voxbridge with its
//! own node secret, so every `WorkerService` call must prove its caller first, before
//! anything else happens: a gateway shows a worker token voxbridge signed (checked with
//! voxbridge's public key alone), the worker's own host shows the node secret they share.
//! Anything else is UNAUTHENTICATED. Health and reflection stay open: they reveal nothing
//! and load balancers probe them.
//!
//! A worker without voxbridge has nobody to issue tokens, so it takes no credentials at
//! all; it may then listen only on its Unix socket, mode 0600 (see `worker::run`).

use tonic::Status;
use tonic::metadata::MetadataMap;
use vox_node::NodeSecret;
use vox_node::tokens::{self, ClusterKey};

/// The check in front of a worker's service.
#[derive(Debug, Clone)]
pub enum WorkerAuth {
    /// No voxbridge: the Unix socket's file mode is the only gate.
    SocketOnly,
    /// Gateways with a worker token, and this worker's own host.
    Cluster { own: NodeSecret, key: ClusterKey },
}

/// Who a request came from, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Anyone who could open the Unix socket (a worker without voxbridge).
    Local,
    /// The worker's own host (its node secret).
    Host,
    /// A gateway, by its node id.
    Gateway(String),
}

impl WorkerAuth {
    /// Checks a request's `authorization: Bearer …` metadata.
    pub fn check(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        let (own, key) = match self {
            WorkerAuth::SocketOnly => return Ok(Caller::Local),
            WorkerAuth::Cluster { own, key } => (own, key),
        };
        let Some(bearer) = tokens::bearer(metadata) else {
            return Err(Status::unauthenticated(
                "no credentials: a worker serves gateways that send `authorization: Bearer <worker token>` \
                 (ClusterService/IssueWorkerToken from voxbridge) and its own host (its node secret)",
            ));
        };
        if own.is(bearer) {
            return Ok(Caller::Host);
        }
        if bearer.starts_with("vxn.") {
            return Err(Status::unauthenticated(
                "a node secret that is not this worker's: gateways authenticate to workers with a worker \
                 token from voxbridge (ClusterService/IssueWorkerToken), not with their node secret",
            ));
        }
        let Some(verifier) = key.verifier() else {
            // Not the caller's fault: the token may be fine once the key is here.
            return Err(Status::unavailable(
                "waiting for voxbridge's token key: this worker cannot check worker tokens yet; retry shortly",
            ));
        };
        match verifier.worker(bearer) {
            Ok(claims) => {
                tracing::debug!(gateway = %claims.sub, region = %claims.region, "worker token accepted");
                Ok(Caller::Gateway(claims.sub))
            }
            Err(e) => Err(Status::unauthenticated(format!(
                "{}; ask voxbridge for a fresh one (ClusterService/IssueWorkerToken)",
                e.message
            ))),
        }
    }
}

impl tonic::service::Interceptor for WorkerAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let caller = self.check(req.metadata())?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tonic::Code;
    use vox_node::tokens::{TokenSigner, TokenVerifier};

    use super::*;

    const SECRET: &str = "vxn.nd_0123456789abcdef.0123456789abcdefghjkmnpqrstvwxyz";

    fn with_bearer(bearer: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(b) = bearer {
            m.insert("authorization", format!("Bearer {b}").parse().unwrap());
        }
        m
    }

    fn cluster(seed: u8) -> (TokenSigner, WorkerAuth) {
        let signer = TokenSigner::from_seed(&[seed; 32]).unwrap();
        let key = ClusterKey::fixed(TokenVerifier::from_key(&signer.token_key()).unwrap());
        (signer, WorkerAuth::Cluster { own: NodeSecret::parse("test", SECRET).unwrap(), key })
    }

    fn token(signer: &TokenSigner, gateway: &str) -> String {
        signer.worker_token(gateway, "rg_1", chrono::Utc::now(), chrono::Duration::minutes(5)).unwrap().0
    }

    #[test]
    fn the_host_and_gateways_with_tokens_get_in() {
        let (signer, auth) = cluster(1);
        assert_eq!(auth.check(&with_bearer(Some(SECRET))).unwrap(), Caller::Host);
        let t = token(&signer, "nd_gateway00000001");
        assert_eq!(auth.check(&with_bearer(Some(&t))).unwrap(), Caller::Gateway("nd_gateway00000001".into()));
    }

    #[test]
    fn everyone_else_is_refused_with_a_reason() {
        let (_, auth) = cluster(1);
        let (other_cluster, _) = cluster(2);
        let no_creds = auth.check(&with_bearer(None)).unwrap_err();
        assert_eq!(no_creds.code(), Code::Unauthenticated);
        assert!(no_creds.message().contains("IssueWorkerToken"), "{}", no_creds.message());
        let forged = auth.check(&with_bearer(Some("eyJhbGciOiJub25lIn0.e30."))).unwrap_err();
        assert_eq!(forged.code(), Code::Unauthenticated);
        let foreign = auth.check(&with_bearer(Some(&token(&other_cluster, "nd_x")))).unwrap_err();
        assert_eq!(foreign.code(), Code::Unauthenticated);
        assert!(foreign.message().contains("not a valid vox-worker token"), "{}", foreign.message());
        let other_node =
            auth.check(&with_bearer(Some("vxn.nd_0123456789abcdeg.0123456789abcdefghjkmnpqrstvwxyz"))).unwrap_err();
        assert_eq!(other_node.code(), Code::Unauthenticated);
        assert!(other_node.message().contains("not this worker's"), "{}", other_node.message());
    }

    #[test]
    fn tokens_wait_for_the_key_but_the_host_does_not() {
        let auth = WorkerAuth::Cluster { own: NodeSecret::parse("test", SECRET).unwrap(), key: ClusterKey::default() };
        let (signer, _) = cluster(1);
        let early = auth.check(&with_bearer(Some(&token(&signer, "nd_x")))).unwrap_err();
        assert_eq!(early.code(), Code::Unavailable);
        assert!(early.message().contains("waiting for voxbridge's token key"), "{}", early.message());
        assert_eq!(auth.check(&with_bearer(Some(SECRET))).unwrap(), Caller::Host);
        assert_eq!(WorkerAuth::SocketOnly.check(&with_bearer(None)).unwrap(), Caller::Local);
    }
}
