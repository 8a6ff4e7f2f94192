//! Do-not-call lists: entries, the list a request names, and what an upload added.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vox_proto::backend::v1 as pb;

use super::campaign::NumberRejection;
use super::{non_empty, time};
use crate::error::ApiResult;

/// Which list: one campaign's, or the global list every campaign keeps to.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DncList {
    /// The campaign whose list this is; omitted: the global list.
    pub campaign_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DncPageQuery {
    /// The campaign whose list this is; omitted: the global list.
    pub campaign_id: Option<String>,
    /// `next_after` of the previous page.
    pub after: Option<String>,
    /// Page size: default 100, at most 1000.
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DncEntry {
    /// E.164.
    pub number: String,
    /// `null` on the global list.
    pub campaign_id: Option<String>,
    pub added_at: DateTime<Utc>,
    /// "user:<email>", "key:<id>" or "node:<id>".
    pub added_by: String,
}

/// One page of a list, by number.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DncPage {
    pub entries: Vec<DncEntry>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next_after: Option<String>,
}

impl DncPage {
    pub fn from_proto(r: pb::ListDoNotCallResponse, limit: usize) -> ApiResult<Self> {
        let entries: Vec<DncEntry> = r
            .entries
            .into_iter()
            .map(|e| -> ApiResult<DncEntry> {
                Ok(DncEntry {
                    added_at: time(e.added_at, "do-not-call added_at")?,
                    number: e.number,
                    campaign_id: non_empty(e.campaign_id),
                    added_by: e.added_by,
                })
            })
            .collect::<ApiResult<_>>()?;
        let next_after = (entries.len() == limit).then(|| entries.last().map(|e| e.number.clone())).flatten();
        Ok(DncPage { entries, next_after })
    }
}

/// Numbers to add to or remove from a list; rows are 1-based positions in `numbers`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct DncNumbers {
    #[schema(example = json!(["+14155550123"]))]
    pub numbers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DncAdded {
    /// Numbers put on the list.
    pub added: u32,
    /// Valid numbers that were on the list already.
    pub already_listed: u32,
    /// Rows not taken, in row order: the first 1,000 of them.
    pub rejected: Vec<NumberRejection>,
    /// How many rows were not taken, in all.
    pub rejected_count: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DncRemoved {
    /// Numbers that were on the list and are no longer.
    pub removed: u32,
}
