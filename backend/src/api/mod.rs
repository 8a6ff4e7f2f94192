//! The gRPC services, one file per service. Each handler authenticates, turns the
//! request into domain types (bad input → INVALID_ARGUMENT naming the field), calls the
//! stores and maps the result back.

pub mod api_keys;
pub mod calls;
pub mod campaigns;
pub mod cluster;
pub mod dashboard;
pub mod dnc;
pub mod events;
pub mod jobs;
pub mod leadership;
pub mod ledger;
pub mod nodes;
pub mod numbers;
pub mod regions;
pub mod storage;
pub mod users;
pub mod webhooks;

use tonic::{Response, Status};
use vox_domain::{Error, ErrorCode};

pub type RpcResult<T> = Result<Response<T>, Status>;

/// Turns a domain result into a gRPC reply; a failure as [`status`] words it.
pub fn reply<T>(method: &'static str, r: vox_domain::Result<T>) -> RpcResult<T> {
    r.map(Response::new).map_err(|e| status(method, e))
}

/// A failure as the caller gets it, logged here, where it is handled. Refusals keep
/// their message, which names the field and what was expected. Internal failures and
/// unavailable dependencies carry SQLite's, MongoDB's, Redis's or S3's own words (SQL,
/// paths, addresses): they are logged in full under a fresh error id, and the caller
/// gets only the id (`Error::conceal`). Every error a service sends, streams included,
/// goes through here.
pub fn status(method: &'static str, e: Error) -> Status {
    match e.conceal("voxbridge") {
        Some(c) if e.code == ErrorCode::Internal => {
            tracing::error!(method, error_id = %c.id, error = %e.message, "rpc failed");
            Status::from(c.public)
        }
        Some(c) => {
            tracing::warn!(method, error_id = %c.id, code = ?e.code, error = %e.message, "rpc failed: a dependency is unavailable");
            Status::from(c.public)
        }
        None => {
            tracing::debug!(method, code = ?e.code, error = %e.message, "rpc refused");
            Status::from(e)
        }
    }
}

/// A required id field.
pub fn required_id(field: &str, value: &str) -> vox_domain::Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::invalid(field, "required"));
    }
    if v.len() > 64 {
        return Err(Error::invalid(field, "at most 64 characters"));
    }
    Ok(v.to_string())
}

/// 0 → `default`; otherwise at most `max`.
pub fn limit(field: &str, v: u32, default: usize, max: usize) -> vox_domain::Result<usize> {
    match v as usize {
        0 => Ok(default),
        n if n <= max => Ok(n),
        n => Err(Error::invalid(field, format!("{n} is over the maximum of {max}"))),
    }
}
