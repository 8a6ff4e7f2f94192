//! One error type across the wire: a small [`ErrorCode`] mapped both to gRPC codes and to
//! HTTP statuses, plus the message a person needs to act on.
//!
//! What leaves a process: refusals (bad input, not found, a precondition, a permission)
//! keep their message, which names the field and what was expected. Internal failures
//! and unreachable dependencies do not: their messages carry a driver's or a database's
//! own words (SQL, file paths, server addresses), which help an attacker and confuse a
//! user. [`Error::conceal`] swaps them for a short error id; the process logs the full
//! message under that id, so an operator finds it with one grep.

use std::fmt;

/// What went wrong, in terms a caller can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Bad input: which field, what was expected.
    InvalidArgument,
    NotFound,
    AlreadyExists,
    /// The request is valid but the object is not in a state that allows it (an illegal
    /// call transition, a stale fencing term, a region still in use).
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    /// No capacity: try another slot.
    ResourceExhausted,
    /// Draining, shutting down or a dependency is down: retry later.
    Unavailable,
    /// A bug or a storage failure; the message says which operation failed.
    Internal,
}

impl ErrorCode {
    pub fn grpc(self) -> tonic::Code {
        match self {
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorCode::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    pub fn from_grpc(code: tonic::Code) -> Self {
        match code {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ErrorCode::InvalidArgument,
            tonic::Code::NotFound => ErrorCode::NotFound,
            tonic::Code::AlreadyExists => ErrorCode::AlreadyExists,
            tonic::Code::FailedPrecondition | tonic::Code::Aborted => ErrorCode::FailedPrecondition,
            tonic::Code::Unauthenticated => ErrorCode::Unauthenticated,
            tonic::Code::PermissionDenied => ErrorCode::PermissionDenied,
            tonic::Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }

    /// The HTTP status the gateway answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists => 409,
            ErrorCode::FailedPrecondition => 412,
            ErrorCode::ResourceExhausted | ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// An error with its code and a message for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }

    /// A bad field: `field` names it the way the request spells it.
    pub fn invalid(field: &str, expected: impl fmt::Display) -> Self {
        Error::new(ErrorCode::InvalidArgument, format!("{field}: {expected}"))
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Error::new(ErrorCode::NotFound, format!("{what} {id:?} not found"))
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::AlreadyExists, message)
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::FailedPrecondition, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Unauthenticated, message)
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::PermissionDenied, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Internal, message)
    }
}

/// An error as callers outside `process` see it, and the id its details are logged under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concealed {
    pub id: String,
    pub public: Error,
}

/// A concealed message: the summary, the id, and where to look for it.
fn concealed_message(summary: &str, id: &str, process: &str) -> String {
    format!("{summary} (error {id}; {})", where_logged(process))
}

fn where_logged(process: &str) -> String {
    format!("the details are in {process}'s log under this id")
}

impl Error {
    /// For an internal failure or an unavailable dependency: the same code with a message
    /// that names only a fresh error id and `process`, whose log must then carry the full
    /// message under that id. `None` for refusals, whose message is for the caller.
    ///
    /// A message that is already concealed (a voxbridge answer relayed by voxgate) is
    /// kept, so the id still points at the process that knows the details.
    pub fn conceal(&self, process: &str) -> Option<Concealed> {
        if !matches!(self.code, ErrorCode::Internal | ErrorCode::Unavailable) || concealed_id(&self.message).is_some() {
            return None;
        }
        let id = crate::ids::new_error_id();
        let message = match self.code {
            ErrorCode::Internal => format!("internal error {id}; {}", where_logged(process)),
            _ => concealed_message(
                &format!("{process} cannot reach its database or storage right now; retry shortly"),
                &id,
                process,
            ),
        };
        Some(Concealed { public: Error::new(self.code, message), id })
    }

    /// Like [`Error::conceal`], with the caller's own words before the id ("the control
    /// plane (voxbridge) is unreachable; retry shortly").
    pub fn conceal_as(&self, summary: &str, process: &str) -> Concealed {
        let id = crate::ids::new_error_id();
        Concealed { public: Error::new(self.code, concealed_message(summary, &id, process)), id }
    }
}

/// The error id in a concealed message, if `message` is one.
pub fn concealed_id(message: &str) -> Option<&str> {
    let len = "err_".len() + crate::ids::ERROR_ID_LEN;
    message.match_indices("err_").find_map(|(at, _)| {
        let id = message.get(at..at + len)?;
        let well_formed = id[4..].bytes().all(|b| crate::ids::ALPHABET.contains(&b))
            && message[at + len..].starts_with("; the details are in ");
        well_formed.then_some(id)
    })
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        tonic::Status::new(e.code.grpc(), e.message)
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::new(ErrorCode::from_grpc(s.code()), s.message().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_grpc() {
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::FailedPrecondition,
            ErrorCode::Unauthenticated,
            ErrorCode::PermissionDenied,
            ErrorCode::ResourceExhausted,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            assert_eq!(ErrorCode::from_grpc(code.grpc()), code);
        }
        assert_eq!(ErrorCode::ResourceExhausted.http_status(), 503);
        assert_eq!(ErrorCode::FailedPrecondition.http_status(), 412);
    }

    #[test]
    fn internal_failures_are_concealed_behind_an_id_and_refusals_are_not() {
        let e = Error::internal("sqlite: insert call: UNIQUE constraint failed: calls.id");
        let c = e.conceal("voxbridge").unwrap();
        assert_eq!(c.public.code, ErrorCode::Internal);
        assert_eq!(
            c.public.message,
            format!("internal error {}; the details are in voxbridge's log under this id", c.id)
        );
        assert!(!c.public.message.contains("sqlite"));
        assert_eq!(concealed_id(&c.public.message), Some(c.id.as_str()));
        assert!(c.public.conceal("voxgate").is_none(), "relayed as is: the id points at voxbridge's log");

        let down = Error::unavailable("mongodb: list calls: Server selection timeout: 10.0.0.7:27017");
        let c = down.conceal("voxbridge").unwrap();
        assert!(c.public.message.starts_with("voxbridge cannot reach its database or storage right now"));
        assert!(!c.public.message.contains("10.0.0.7"));

        assert!(Error::invalid("numbers", "no numbers given").conceal("voxbridge").is_none());
        assert!(Error::not_found("call", "ca_1").conceal("voxbridge").is_none());
        assert_eq!(concealed_id("internal error err_short; the details are in x"), None);
        assert_eq!(concealed_id("sqlite: no such table: err_"), None);
    }
}
