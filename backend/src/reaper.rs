//! The stale-call reaper: a background loop, and the same pass on demand ("run cleanup
//! now"). Exactly-once reaping is the store's job, so two voxbridge instances may both
//! run this loop.

use std::sync::Arc;

use vox_domain::Result;
use vox_domain::call::CallState;
use vox_store::ClusterEvent;

use crate::bridge::Bridge;
use crate::metrics::label;

/// One pass: every stuck call moved on, counted by the state it was stuck in.
pub async fn reap_once(bridge: &Bridge) -> Result<Vec<(CallState, u64)>> {
    let reaped = bridge.stores.calls.reap_stale(&bridge.settings.stale_deadlines(), bridge.clock.now()).await?;
    for (state, n) in &reaped {
        bridge.metrics.reaped.get_or_create(&label("from_state", state.as_str())).inc_by(*n);
        tracing::info!(from_state = %state, count = n, "reaped stale calls");
    }
    if !reaped.is_empty() {
        bridge.publish(ClusterEvent::CallChanged(String::new()));
    }
    Ok(reaped)
}

/// Drops activity-feed events older than the retention (`--event-retention-days`).
pub async fn prune_feed(bridge: &Bridge) -> Result<u64> {
    let before = bridge.clock.now() - chrono::Duration::days(i64::from(bridge.settings.event_retention_days));
    let n = bridge.stores.feed.prune_feed(before).await?;
    if n > 0 {
        tracing::info!(count = n, %before, "pruned old activity-feed events");
    }
    Ok(n)
}

pub async fn run(bridge: Arc<Bridge>) {
    let period = std::time::Duration::from_secs(u64::from(bridge.settings.reaper_interval_seconds));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = bridge.shutdown.clone();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = reap_once(&bridge).await {
                    tracing::error!(error = %e, "stale-call reaper pass failed; retrying next period");
                }
                if let Err(e) = prune_feed(&bridge).await {
                    tracing::error!(error = %e, "pruning the activity feed failed; retrying next period");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
