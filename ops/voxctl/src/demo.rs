//! `voxctl up --demo`: the outbound side on top of the cluster, so a new user sees a
//! campaign being dialled end to end within a minute, without a phone line.
//!
//! It adds voxsim (the carrier simulator, speaking Twilio's protocol with the cluster's
//! generated Twilio auth token) and voxdialler (node `local-dialler`, placing calls
//! through voxsim, whose callbacks and media streams go to voxgate), and a running
//! campaign "Demo campaign" of 500 made-up numbers with the echo agent. voxsim's model
//! is tuned for a demo: people answer within seconds and talk for about 20 s, so
//! answers, abandons, retries and recordings all show up quickly.

use anyhow::Context;
use tonic::transport::Channel;
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as common;

pub const DIALLER_NODE_NAME: &str = "local-dialler";
pub const CAMPAIGN_NAME: &str = "Demo campaign";
/// How many numbers a new demo campaign dials.
pub const NUMBERS: u32 = 500;

/// voxsim's flags for the demo's carrier model.
pub fn sim_model() -> Vec<String> {
    [
        "--answer-prob",
        "0.35",
        "--machine-prob",
        "0.05",
        "--fail-prob",
        "0.15",
        "--answer-delay-mean",
        "5",
        "--answer-delay-sd",
        "3",
        "--talk-mean",
        "20",
        "--talk-cv",
        "0.6",
        "--no-answer-timeout",
        "20",
    ]
    .map(String::from)
    .to_vec()
}

/// The demo campaign's settings: every day, all day (UTC), predictive pacing under 3%
/// abandons, no-answer and busy retried once after a minute.
pub fn campaign_spec(region_id: &str, workers: u32) -> pb::CampaignSpec {
    pb::CampaignSpec {
        name: CAMPAIGN_NAME.into(),
        region_id: region_id.into(),
        caller_id: "+15550100000".into(),
        agent: Some(common::AgentSettings { kind: common::AgentKind::Echo as i32, ..Default::default() }),
        weight: 1,
        max_concurrency: workers * 4,
        window: Some(pb::CallingWindow {
            time_zone: "UTC".into(),
            start: "00:00".into(),
            end: "24:00".into(),
            days: vec![],
        }),
        retry: Some(pb::RetryPolicy {
            max_attempts: 2,
            backoff_seconds: 60,
            backoff_multiplier: 1.0,
            retry_on: vec![pb::CallState::NoAnswer as i32, pb::CallState::Busy as i32],
        }),
        pacing: Some(pb::Pacing {
            mode: pb::PacingMode::Predictive as i32,
            fixed_ratio: 0.0,
            abandon_target: 0.03,
            max_calls_per_second: 5,
        }),
        compliance: None,
    }
}

/// Made-up numbers in the 555-01xx fiction range.
pub fn numbers(batch: u32) -> Vec<String> {
    (0..NUMBERS).map(|i| format!("+1555{:03}{:04}", 100 + batch % 800, i)).collect()
}

fn authed<T>(token: &str, msg: T) -> anyhow::Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().context("an access token fit for a header")?);
    Ok(r)
}

/// Starts the demo campaign: the running one if there is one with numbers left,
/// otherwise a new one. Returns its id.
pub async fn ensure_campaign(channel: &Channel, token: &str, region_id: &str, workers: u32) -> anyhow::Result<String> {
    let mut campaigns = pb::campaign_service_client::CampaignServiceClient::new(channel.clone());
    let existing = campaigns
        .list_campaigns(authed(token, pb::ListCampaignsRequest { status: 0 })?)
        .await
        .map_err(|s| anyhow::anyhow!("list campaigns: {}", s.message()))?
        .into_inner()
        .campaigns;
    let demos: Vec<&pb::Campaign> =
        existing.iter().filter(|c| c.spec.as_ref().is_some_and(|s| s.name.starts_with(CAMPAIGN_NAME))).collect();
    if let Some(c) = demos
        .iter()
        .find(|c| c.counts.as_ref().is_some_and(|k| k.pending > 0) && c.status != pb::CampaignStatus::Completed as i32)
    {
        if c.status != pb::CampaignStatus::Running as i32 {
            let mut campaigns = pb::campaign_service_client::CampaignServiceClient::new(channel.clone());
            campaigns
                .start_campaign(authed(token, pb::CampaignActionRequest { id: c.id.clone() })?)
                .await
                .map_err(|s| anyhow::anyhow!("start the demo campaign: {}", s.message()))?;
        }
        return Ok(c.id.clone());
    }
    let mut spec = campaign_spec(region_id, workers);
    if !demos.is_empty() {
        spec.name = format!("{CAMPAIGN_NAME} {}", demos.len() + 1);
    }
    let id = campaigns
        .create_campaign(authed(token, pb::CreateCampaignRequest { spec: Some(spec) })?)
        .await
        .map_err(|s| anyhow::anyhow!("create the demo campaign: {}", s.message()))?
        .into_inner()
        .id;
    campaigns
        .add_numbers(authed(
            token,
            pb::AddNumbersRequest { campaign_id: id.clone(), numbers: numbers(demos.len() as u32) },
        )?)
        .await
        .map_err(|s| anyhow::anyhow!("add the demo numbers: {}", s.message()))?;
    campaigns
        .start_campaign(authed(token, pb::CampaignActionRequest { id: id.clone() })?)
        .await
        .map_err(|s| anyhow::anyhow!("start the demo campaign: {}", s.message()))?;
    tracing::info!(campaign_id = %id, numbers = NUMBERS, "demo campaign running");
    Ok(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn demo_numbers_are_valid_and_distinct_per_batch() {
        let a = numbers(0);
        let b = numbers(1);
        assert_eq!(a.len(), NUMBERS as usize);
        assert!(a.iter().all(|n| vox_domain::phone::E164::field("n", n).is_ok()));
        assert!(a.iter().all(|n| !b.contains(n)));
    }

    #[test]
    fn the_demo_campaign_is_valid() {
        vox_domain::campaign::CampaignSpec::from_proto(Some(&campaign_spec("rg_1", 4))).unwrap();
    }
}
