//! The protobuf contracts of every Vox service and their generated code.
//!
//! One module per protobuf package (`vox.<service>.v1`): the control plane
//! ([`backend`]), the fleet worker ([`fleet`]), the dialler ([`dialler`]) and the types
//! they share ([`common`]). [`FILE_DESCRIPTOR_SET`] feeds gRPC server reflection so
//! `grpcurl -plaintext host:port list` works with no proto files at hand.
//!
//! Generated code only: validation into domain types lives in `vox-domain`.

#![allow(clippy::unwrap_used, clippy::large_enum_variant, missing_docs, reason = "generated code")]

pub mod common {
    pub mod v1 {
        tonic::include_proto!("vox.common.v1");
    }
}

pub mod backend {
    pub mod v1 {
        tonic::include_proto!("vox.backend.v1");
    }
}

pub mod fleet {
    pub mod v1 {
        tonic::include_proto!("vox.fleet.v1");
    }
}

pub mod dialler {
    pub mod v1 {
        tonic::include_proto!("vox.dialler.v1");
    }
}

/// Every Vox proto file and its imports, encoded, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vox_descriptor.bin"));

/// The fully qualified names of the control plane's services, as reflection lists them.
pub const BACKEND_SERVICES: &[&str] = &[
    "vox.backend.v1.RegionService",
    "vox.backend.v1.NodeService",
    "vox.backend.v1.CampaignService",
    "vox.backend.v1.CallService",
    "vox.backend.v1.LeadershipService",
    "vox.backend.v1.DashboardService",
    "vox.backend.v1.AuthService",
    "vox.backend.v1.UserService",
    "vox.backend.v1.JobService",
    "vox.backend.v1.StorageService",
    "vox.backend.v1.DoNotCallService",
    "vox.backend.v1.ClusterService",
    "vox.backend.v1.ApiKeyService",
    "vox.backend.v1.EventService",
    "vox.backend.v1.WebhookService",
];
