//! What only an admin may do (issue 12, item 12): disable a node (permanent), remove
//! do-not-call entries (the numbers may be called again), and set or change a campaign's
//! external agent URL (where every call's audio goes). Operators keep the rest of node
//! lifecycle, adding do-not-call entries and editing campaigns that leave the agent URL
//! alone. An external agent URL must be wss:// unless voxbridge allows plain ws://.
#![allow(clippy::unwrap_used)]

mod common;

use common::authed;
use tonic::Code;
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as cpb;

fn lifecycle(node_id: &str, action: pb::LifecycleAction) -> pb::SetNodeLifecycleRequest {
    pb::SetNodeLifecycleRequest { node_id: node_id.into(), action: action as i32, reason: "roles test".into() }
}

fn external(url: &str) -> Option<cpb::AgentSettings> {
    Some(cpb::AgentSettings { kind: cpb::AgentKind::External as i32, external_url: url.into(), ..Default::default() })
}

fn spec_with(region_id: &str, agent: Option<cpb::AgentSettings>) -> pb::CampaignSpec {
    pb::CampaignSpec { agent, ..common::campaign_spec(region_id) }
}

#[tokio::test]
async fn only_an_admin_disables_a_node() {
    let b = common::start(&[]).await;
    let region = b.create_region("eu-west-1").await;
    let (node, _) = b.register(pb::NodeKind::Fleet, &region.id).await;
    let operator = b.user("operator@vox.test", pb::Role::Operator).await;

    // Maintenance, resume and shutdown stay operator actions.
    for action in [pb::LifecycleAction::Maintenance, pb::LifecycleAction::Resume, pb::LifecycleAction::Shutdown] {
        b.nodes().set_node_lifecycle(authed(&operator, lifecycle(&node.id, action))).await.unwrap();
    }
    let refused =
        b.nodes().set_node_lifecycle(authed(&operator, lifecycle(&node.id, pb::LifecycleAction::Disable))).await;
    let err = refused.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("admin") && err.message().contains("permanent"), "{}", err.message());
    assert_ne!(b.node(&node.id).await.desired_state, pb::DesiredState::Disabled as i32, "the refusal changed nothing");

    let disabled = b
        .nodes()
        .set_node_lifecycle(authed(&b.admin, lifecycle(&node.id, pb::LifecycleAction::Disable)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(disabled.desired_state, pb::DesiredState::Disabled as i32);
}

#[tokio::test]
async fn operators_add_do_not_call_numbers_and_only_admins_remove_them() {
    let b = common::start(&[]).await;
    let operator = b.user("operator@vox.test", pb::Role::Operator).await;
    let mut dnc = pb::do_not_call_service_client::DoNotCallServiceClient::new(b.channel.clone());
    let numbers = vec!["+14155550111".to_string(), "+14155550112".to_string()];
    let added = dnc
        .add_do_not_call(authed(
            &operator,
            pb::AddDoNotCallRequest { campaign_id: String::new(), numbers: numbers.clone() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.added, 2);

    let remove = pb::RemoveDoNotCallRequest { campaign_id: String::new(), numbers: numbers[..1].to_vec() };
    let err = dnc.remove_do_not_call(authed(&operator, remove.clone())).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("called again") && err.message().contains("admin"), "{}", err.message());
    let reader = dnc.clone();
    let listed = |token: String| {
        let mut dnc = reader.clone();
        async move {
            let req = pb::ListDoNotCallRequest { campaign_id: String::new(), after: String::new(), limit: 100 };
            dnc.list_do_not_call(authed(&token, req)).await.unwrap().into_inner().entries.len()
        }
    };
    assert_eq!(listed(operator.clone()).await, 2, "the refusal removed nothing");

    let removed = dnc.remove_do_not_call(authed(&b.admin, remove)).await.unwrap().into_inner();
    assert_eq!(removed.removed, 1);
    assert_eq!(listed(operator).await, 1);
}

#[tokio::test]
async fn only_an_admin_points_a_campaign_at_an_external_agent() {
    let b = common::start(&[]).await;
    let region = b.create_region("us-west-2").await;
    let operator = b.user("operator@vox.test", pb::Role::Operator).await;
    let create = |token: &str, agent| {
        let mut campaigns = b.campaigns();
        let req = authed(token, pb::CreateCampaignRequest { spec: Some(spec_with(&region.id, agent)) });
        async move { campaigns.create_campaign(req).await }
    };

    // An operator creates campaigns, but not ones that send audio to a server of their choice.
    create(&operator, None).await.unwrap();
    let err = create(&operator, external("wss://agent.example.com/voice")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("external_url") && err.message().contains("admin"), "{}", err.message());

    // An admin may.
    let campaign = create(&b.admin, external("wss://agent.example.com/voice")).await.unwrap().into_inner();
    let update = |token: &str, spec: pb::CampaignSpec| {
        let mut campaigns = b.campaigns();
        let req = authed(token, pb::UpdateCampaignRequest { id: campaign.id.clone(), spec: Some(spec) });
        async move { campaigns.update_campaign(req).await }
    };

    // The operator edits the campaign with the agent URL left as it is...
    let renamed = pb::CampaignSpec {
        name: "renewals, second wave".into(),
        ..spec_with(&region.id, external("wss://agent.example.com/voice"))
    };
    let edited = update(&operator, renamed.clone()).await.unwrap().into_inner();
    assert_eq!(edited.spec.unwrap().name, "renewals, second wave");
    // ...but cannot redirect the audio.
    let moved = pb::CampaignSpec { agent: external("wss://elsewhere.example.net/tap"), ..renamed.clone() };
    let err = update(&operator, moved.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("external_url"), "{}", err.message());
    let stored = b
        .campaigns()
        .get_campaign(authed(&operator, pb::GetCampaignRequest { id: campaign.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.spec.unwrap().agent.unwrap().external_url, "wss://agent.example.com/voice");
    // The admin can.
    let redirected = update(&b.admin, moved).await.unwrap().into_inner();
    assert_eq!(redirected.spec.unwrap().agent.unwrap().external_url, "wss://elsewhere.example.net/tap");
}

#[tokio::test]
async fn plain_ws_agent_urls_need_the_flag() {
    let b = common::start(&[]).await;
    let region = b.create_region("us-east-2").await;
    let spec = spec_with(&region.id, external("ws://127.0.0.1:9/agent"));
    let err = b
        .campaigns()
        .create_campaign(authed(&b.admin, pb::CreateCampaignRequest { spec: Some(spec) }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("wss://") && err.message().contains("--allow-insecure-agent-urls"),
        "{}",
        err.message()
    );

    let allowing = common::start(&["--allow-insecure-agent-urls"]).await;
    let region = allowing.create_region("us-east-2").await;
    let spec = spec_with(&region.id, external("ws://127.0.0.1:9/agent"));
    let created = allowing
        .campaigns()
        .create_campaign(authed(&allowing.admin, pb::CreateCampaignRequest { spec: Some(spec) }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.spec.unwrap().agent.unwrap().external_url, "ws://127.0.0.1:9/agent");
}
