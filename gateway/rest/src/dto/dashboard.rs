//! The dashboard: the real-time pulse of the whole cluster.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vox_proto::backend::v1 as pb;

use super::time;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct LiveConversations {
    /// Calls answered, attaching or in progress on the phone.
    pub phone: u64,
    /// Web sessions answered, attaching or in progress.
    pub web: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Pipeline {
    /// leased, dialing, ringing, answered, attaching.
    pub processing: u64,
    /// Pending calls due now in running campaigns.
    pub pending: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Capacity {
    /// Fleet hosts ("backend nodes") online / registered and not disabled.
    pub fleet_nodes_online: u32,
    pub fleet_nodes_total: u32,
    /// Gateways ("proxy nodes") online / registered.
    pub gateway_nodes_online: u32,
    pub gateway_nodes_total: u32,
    /// Idle slots on online, active fleet nodes / every slot on online fleet nodes.
    pub worker_slots_free: u32,
    pub worker_slots_total: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Dashboard {
    pub at: DateTime<Utc>,
    pub live: LiveConversations,
    pub pipeline: Pipeline,
    pub capacity: Capacity,
}

impl TryFrom<pb::Dashboard> for Dashboard {
    type Error = ApiError;

    fn try_from(d: pb::Dashboard) -> ApiResult<Self> {
        let live = d.live.unwrap_or_default();
        let pipeline = d.pipeline.unwrap_or_default();
        let c = d.capacity.unwrap_or_default();
        Ok(Dashboard {
            at: time(d.at, "dashboard at")?,
            live: LiveConversations { phone: live.phone, web: live.web },
            pipeline: Pipeline { processing: pipeline.processing, pending: pipeline.pending },
            capacity: Capacity {
                fleet_nodes_online: c.fleet_nodes_online,
                fleet_nodes_total: c.fleet_nodes_total,
                gateway_nodes_online: c.gateway_nodes_online,
                gateway_nodes_total: c.gateway_nodes_total,
                worker_slots_free: c.worker_slots_free,
                worker_slots_total: c.worker_slots_total,
            },
        })
    }
}
