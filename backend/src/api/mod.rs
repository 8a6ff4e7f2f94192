//! The gRPC services, one file per service. Each handler authenticates, turns the
//! request into domain types (bad input → INVALID_ARGUMENT naming the field), calls the
//! stores and maps the result back.

pub mod calls;
pub mod campaigns;
pub mod cluster;
pub mod dashboard;
pub mod dnc;
pub mod jobs;
pub mod leadership;
pub mod nodes;
pub mod regions;
pub mod storage;
pub mod users;

use tonic::{Response, Status};
use vox_domain::{Error, ErrorCode};

pub type RpcResult<T> = Result<Response<T>, Status>;

/// Turns a domain result into a gRPC reply; internal errors are logged here, where they
/// are handled, and reach the caller without internals beyond the failed operation.
pub fn reply<T>(method: &'static str, r: vox_domain::Result<T>) -> RpcResult<T> {
    match r {
        Ok(v) => Ok(Response::new(v)),
        Err(e) => {
            if e.code == ErrorCode::Internal {
                tracing::error!(method, error = %e.message, "rpc failed");
            } else {
                tracing::debug!(method, code = ?e.code, error = %e.message, "rpc refused");
            }
            Err(Status::from(e))
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
