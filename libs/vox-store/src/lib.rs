//! The control plane's storage, as domain-shaped traits.
//!
//! Each concern has one trait ([`RegionStore`], [`NodeStore`], [`AuditStore`],
//! [`CampaignStore`], [`CallStore`], [`LeadershipStore`], [`UserStore`], [`PresenceStore`],
//! [`EventBus`]) and every implementation is chosen by configuration and bundled into
//! [`Stores`]. The embedded family (SQLite file + in-process presence and events) lives in
//! `vox-store-sqlite` and [`memory`]; production backends come later and must pass the
//! same [`conformance`] suite unchanged.
//!
//! Rules every implementation keeps:
//! - a write either happens whole or not at all (a transition and its timeline event, a
//!   lease batch, a lifecycle change and its audit line);
//! - call moves go through `vox_domain::call::apply_transition`, conditional on the call's
//!   version, so the state machine, fencing terms and lease tokens hold on every backend;
//! - time comes in as an argument (`now`), never from the wall clock inside a store.

pub mod conformance;
pub mod memory;
pub mod queue;
mod traits;

pub use traits::*;
