//! The lease workload: one dialler, many leasers, one campaign drained exactly once.
//!
//! Setup (not timed): a region, a dialler node, a running campaign of `--calls` numbers,
//! and the dialler's leadership lease (renewed in the background while leasers run, as
//! the dialler does). Then `--leasers` tasks, each on its own connection, call
//! `LeaseCalls` with the dialler's secret and fencing term until voxbridge answers with
//! no call; the clock runs from the first request to the last answer.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use vox_proto::backend::v1 as pb;

use super::{Args, Bridge, Latency, bearer};

/// How long the dialler's leadership lease lasts (the longest voxbridge grants), renewed
/// every tenth of it: a slow store must not let it lapse mid-run, which would move the
/// term on and refuse every leaser.
const LEADERSHIP_TTL_SECONDS: u32 = 300;

/// One store's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseReport {
    pub store: String,
    pub calls: u64,
    pub leasers: u32,
    pub batch: u32,
    /// Calls leased per second, end to end.
    pub leases_per_second: f64,
    /// LeaseCalls answered per second (empty answers at the end included).
    pub rpcs_per_second: f64,
    pub seconds: f64,
    /// Latency of one LeaseCalls.
    pub rpc: Latency,
    /// Calls the leasers received, duplicates included.
    pub leased: u64,
    /// Calls received more than once.
    pub duplicates: u64,
    /// voxbridge's own counts of the campaign afterwards.
    pub campaign_pending: u64,
    pub campaign_live: u64,
}

impl LeaseReport {
    /// Every call leased once: none twice, none left, and voxbridge agrees.
    pub fn exactly_once(&self) -> bool {
        self.leased == self.calls
            && self.duplicates == 0
            && self.campaign_pending == 0
            && self.campaign_live == self.calls
    }
}

pub async fn measure(args: &Args, bridge: Bridge, store: &str, calls: u32) -> anyhow::Result<LeaseReport> {
    let region = bridge.create_region("bench-leases").await?;
    let (dialler, secret) = bridge.register_node(pb::NodeKind::Dialler, "", "bench-dialler").await?;
    let campaign = campaign(&bridge, &region, calls).await?;

    let mut leadership = pb::leadership_service_client::LeadershipServiceClient::new(bridge.channel()?);
    let acquire = pb::AcquireLeadershipRequest { holder_id: dialler.clone(), ttl_seconds: LEADERSHIP_TTL_SECONDS };
    let lead = leadership.acquire_leadership(bearer(acquire.clone(), &secret)?).await.context("acquire leadership")?;
    let term = lead.into_inner().term;
    let renewer = {
        let (mut leadership, secret) = (leadership.clone(), secret.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(u64::from(LEADERSHIP_TTL_SECONDS) / 10)).await;
                let Ok(req) = bearer(acquire.clone(), &secret) else { return };
                if let Err(e) = leadership.acquire_leadership(req).await {
                    tracing::warn!(error = %e.message(), "could not renew the dialler's leadership");
                }
            }
        })
    };

    let started = Instant::now();
    let mut leasers = Vec::new();
    for _ in 0..args.leasers {
        let mut calls = pb::call_service_client::CallServiceClient::new(bridge.channel()?);
        let request = pb::LeaseCallsRequest {
            campaign_id: campaign.clone(),
            max: args.batch,
            owner: dialler.clone(),
            fencing_term: term,
            lease_ttl_seconds: 600,
        };
        let secret = secret.clone();
        leasers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut latencies = Vec::new();
            loop {
                let sent = Instant::now();
                let leased = calls.lease_calls(bearer(request.clone(), &secret)?).await.context("lease calls")?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                let leased = leased.into_inner().calls;
                if leased.is_empty() {
                    return anyhow::Ok((ids, latencies));
                }
                for c in leased {
                    if c.lease.as_ref().is_none_or(|l| l.fencing_term != term || l.owner != request.owner) {
                        bail!("call {} came back without this dialler's lease at term {term}: {:?}", c.id, c.lease);
                    }
                    ids.push(c.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    let mut latencies = Vec::new();
    for l in leasers {
        let (ids, ms) = l.await.context("leaser task")??;
        all.extend(ids);
        latencies.extend(ms);
    }
    let seconds = started.elapsed().as_secs_f64();
    renewer.abort();

    let unique: HashSet<&String> = all.iter().collect();
    let counts = pb::campaign_service_client::CampaignServiceClient::new(bridge.admin.clone())
        .get_campaign(bearer(pb::GetCampaignRequest { id: campaign }, &bridge.token)?)
        .await
        .context("read the campaign's counts")?
        .into_inner()
        .counts
        .unwrap_or_default();
    let rpcs = latencies.len();
    Ok(LeaseReport {
        store: store.into(),
        calls: u64::from(calls),
        leasers: args.leasers,
        batch: args.batch,
        leases_per_second: all.len() as f64 / seconds,
        rpcs_per_second: rpcs as f64 / seconds,
        seconds,
        rpc: Latency::of(latencies),
        leased: all.len() as u64,
        duplicates: (all.len() - unique.len()) as u64,
        campaign_pending: counts.pending,
        campaign_live: counts.live,
    })
}

/// A running campaign of `calls` distinct made-up numbers; returns its id.
async fn campaign(bridge: &Bridge, region: &str, calls: u32) -> anyhow::Result<String> {
    let mut campaigns = pb::campaign_service_client::CampaignServiceClient::new(bridge.admin.clone());
    let mut spec = crate::demo::campaign_spec(region, 1);
    spec.name = "bench-leases".into();
    spec.max_concurrency = 100_000;
    let id = campaigns
        .create_campaign(bearer(pb::CreateCampaignRequest { spec: Some(spec) }, &bridge.token)?)
        .await
        .context("create the campaign")?
        .into_inner()
        .id;
    let added = campaigns
        .add_numbers(bearer(pb::AddNumbersRequest { campaign_id: id.clone(), numbers: numbers(calls) }, &bridge.token)?)
        .await
        .context("add the campaign's numbers")?
        .into_inner();
    if added.accepted != calls {
        bail!("voxbridge accepted {} of {calls} numbers: {:?}", added.accepted, added.rejected.first());
    }
    campaigns
        .start_campaign(bearer(pb::CampaignActionRequest { id: id.clone() }, &bridge.token)?)
        .await
        .context("start the campaign")?;
    Ok(id)
}

/// `n` distinct E.164 numbers in the +1 555 fiction range.
fn numbers(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("+1555{:07}", i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_distinct_and_valid() {
        let n = numbers(200_000);
        assert_eq!(n.iter().collect::<HashSet<_>>().len(), 200_000);
        assert!(n.iter().all(|x| vox_domain::phone::E164::field("n", x).is_ok()));
    }
}
