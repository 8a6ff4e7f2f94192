//! The JSON shapes of the API, one file per resource, each with its conversions to and
//! from the voxbridge protobuf messages.
//!
//! Conventions: snake_case fields; enums as lowercase strings (`"fleet"`,
//! `"in_progress"`); timestamps as RFC 3339 strings in UTC; values the protobuf leaves
//! empty to mean "none" (a node's region, a call's campaign) are `null`, never `""`.

pub mod api_key;
pub mod auth;
pub mod call;
pub mod campaign;
pub mod dashboard;
pub mod dialler;
pub mod dnc;
pub mod event;
pub mod job;
pub mod ledger;
pub mod node;
pub mod region;
pub mod storage;
pub mod webhook;

use chrono::{DateTime, Utc};

use crate::error::{ApiError, ApiResult};

/// A protobuf enum as a lowercase JSON string. `from_proto` is `None` for the
/// unspecified value and for values newer than this gateway.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $module:ident::$pb:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $pbv:ident ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            pub fn to_proto(self) -> i32 {
                match self {
                    $( $name::$variant => $module::$pb::$pbv as i32 ),+
                }
            }

            pub fn from_proto(v: i32) -> Option<Self> {
                match $module::$pb::try_from(v).ok()? {
                    $( $module::$pb::$pbv => Some($name::$variant), )+
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use wire_enum;

/// A required enum from voxbridge; an unknown value is a version mismatch.
pub fn known<T>(v: Option<T>, what: &str) -> ApiResult<T> {
    v.ok_or_else(|| ApiError::internal(format!("voxbridge sent a {what} this gateway does not know")))
}

/// A required timestamp from voxbridge.
pub fn time(t: Option<prost_types::Timestamp>, what: &str) -> ApiResult<DateTime<Utc>> {
    let t = t.ok_or_else(|| ApiError::internal(format!("voxbridge sent no {what}")))?;
    Ok(vox_domain::time::from_proto(what, &t)?)
}

pub fn opt_time(t: Option<prost_types::Timestamp>, what: &str) -> ApiResult<Option<DateTime<Utc>>> {
    t.map(|t| time(Some(t), what)).transpose()
}

pub fn to_proto_time(t: DateTime<Utc>) -> prost_types::Timestamp {
    vox_domain::time::to_proto(t)
}

/// `""` → `None`.
pub fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

/// Converts every element, failing on the first bad one.
pub fn convert_all<P, T: TryFrom<P, Error = ApiError>>(items: Vec<P>) -> ApiResult<Vec<T>> {
    items.into_iter().map(T::try_from).collect()
}
