//! Integrations' API keys (issue 16, item 1): created by admins, shown once, stored
//! hashed, revocable at once, with a role and optionally one campaign they keep to.
#![allow(clippy::unwrap_used)]

mod common;

use common::authed;
use tonic::Code;
use vox_proto::backend::v1 as pb;

fn keys(b: &common::Bridge) -> pb::api_key_service_client::ApiKeyServiceClient<tonic::transport::Channel> {
    pb::api_key_service_client::ApiKeyServiceClient::new(b.channel.clone())
}

async fn create_key(b: &common::Bridge, name: &str, role: pb::Role, campaign_id: &str) -> pb::CreateApiKeyResponse {
    let req = pb::CreateApiKeyRequest { name: name.into(), role: role as i32, campaign_id: campaign_id.into() };
    keys(b).create_api_key(authed(&b.admin, req)).await.unwrap().into_inner()
}

/// A campaign with `n` numbers (pending calls) and the ids of its calls.
async fn campaign_with_calls(b: &common::Bridge, region_id: &str, first: u32, n: u32) -> (String, Vec<String>) {
    let req = pb::CreateCampaignRequest { spec: Some(common::campaign_spec(region_id)) };
    let campaign = b.campaigns().create_campaign(authed(&b.admin, req)).await.unwrap().into_inner();
    let numbers = (first..first + n).map(|i| format!("+1415555{i:04}")).collect();
    b.campaigns()
        .add_numbers(authed(&b.admin, pb::AddNumbersRequest { campaign_id: campaign.id.clone(), numbers }))
        .await
        .unwrap();
    let list = pb::ListCallsRequest { campaign_id: campaign.id.clone(), ..Default::default() };
    let calls = b.calls().list_calls(authed(&b.admin, list)).await.unwrap().into_inner().calls;
    (campaign.id, calls.into_iter().map(|c| c.id).collect())
}

fn cancel(call_id: &str) -> pb::TransitionCallRequest {
    pb::TransitionCallRequest {
        call_id: call_id.into(),
        to_state: pb::CallState::Canceled as i32,
        reason: "crm_cancel".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_key_is_shown_once_acts_with_its_role_and_stops_when_revoked() {
    let b = common::start(&[]).await;
    let region = b.create_region("us-east-1").await;
    let (_, calls) = campaign_with_calls(&b, &region.id, 100, 2).await;

    let created = create_key(&b, "HubSpot sync", pb::Role::Operator, "").await;
    let key = created.key.unwrap();
    assert!(created.secret.starts_with(&format!("vk.{}.", key.id)), "{}", created.secret);
    assert_eq!(
        (key.name.as_str(), key.role, key.campaign_id.as_str()),
        ("HubSpot sync", pb::Role::Operator as i32, "")
    );
    assert!(key.last_used_at.is_none() && key.revoked_at.is_none());
    assert!(key.created_by.contains("admin@"), "{}", key.created_by);

    // The key reads and cancels like an operator.
    let secret = created.secret;
    let call = b.calls().get_call(authed(&secret, pb::GetCallRequest { id: calls[0].clone() })).await.unwrap();
    assert_eq!(call.into_inner().id, calls[0]);
    let canceled = b.calls().transition_call(authed(&secret, cancel(&calls[0]))).await.unwrap().into_inner();
    assert_eq!(canceled.state(), pb::CallState::Canceled);
    // ...and no more than an operator.
    let refused = keys(&b).list_api_keys(authed(&secret, pb::ListApiKeysRequest {})).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());

    // The list has no secret, and the use is recorded.
    let listed = keys(&b).list_api_keys(authed(&b.admin, pb::ListApiKeysRequest {})).await.unwrap().into_inner().keys;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some(), "{:?}", listed[0]);
    assert!(!format!("{listed:?}").contains(secret.rsplit('.').next().unwrap()));

    // A wrong secret for the right id is refused like an unknown one.
    let forged = format!("{}{}", &secret[..secret.len() - 4], "zzzz");
    let err = b.calls().get_call(authed(&forged, pb::GetCallRequest { id: calls[1].clone() })).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Revoked: refused at the next request.
    let revoked = keys(&b)
        .revoke_api_key(authed(&b.admin, pb::RevokeApiKeyRequest { id: key.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked_at.is_some());
    let err = b.calls().get_call(authed(&secret, pb::GetCallRequest { id: calls[1].clone() })).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("revoked"), "{}", err.message());

    // Both changes are in the audit log.
    let audit = b
        .nodes()
        .list_audit_events(authed(
            &b.admin,
            pb::ListAuditEventsRequest { target_id: key.id.clone(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"api_key.create") && actions.contains(&"api_key.revoke"), "{actions:?}");
}

#[tokio::test]
async fn a_key_limited_to_a_campaign_sees_and_moves_nothing_else() {
    let b = common::start(&[]).await;
    let region = b.create_region("us-east-1").await;
    let (mine, my_calls) = campaign_with_calls(&b, &region.id, 200, 2).await;
    let (theirs, their_calls) = campaign_with_calls(&b, &region.id, 300, 3).await;
    let secret = create_key(&b, "one campaign", pb::Role::Operator, &mine).await.secret;

    // Its campaign and calls.
    let got = b.campaigns().get_campaign(authed(&secret, pb::GetCampaignRequest { id: mine.clone() })).await.unwrap();
    assert_eq!(got.into_inner().id, mine);
    let listed = b.calls().list_calls(authed(&secret, pb::ListCallsRequest::default())).await.unwrap().into_inner();
    let mut ids: Vec<String> = listed.calls.into_iter().map(|c| c.id).collect();
    ids.sort();
    let mut expected = my_calls.clone();
    expected.sort();
    assert_eq!(ids, expected, "an unfiltered list is the key's campaign");
    b.calls().transition_call(authed(&secret, cancel(&my_calls[0]))).await.unwrap();

    // Nothing of the other campaign, not even whether it exists.
    let err =
        b.campaigns().get_campaign(authed(&secret, pb::GetCampaignRequest { id: theirs.clone() })).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let other = pb::ListCallsRequest { campaign_id: theirs.clone(), ..Default::default() };
    assert_eq!(b.calls().list_calls(authed(&secret, other)).await.unwrap_err().code(), Code::NotFound);
    let err = b.calls().get_call(authed(&secret, pb::GetCallRequest { id: their_calls[0].clone() })).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let events = pb::ListCallEventsRequest { call_id: their_calls[0].clone() };
    assert_eq!(b.calls().list_call_events(authed(&secret, events)).await.unwrap_err().code(), Code::NotFound);
    let err = b.calls().transition_call(authed(&secret, cancel(&their_calls[0]))).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let untouched = b.calls().get_call(authed(&b.admin, pb::GetCallRequest { id: their_calls[0].clone() })).await;
    assert_eq!(untouched.unwrap().into_inner().state(), pb::CallState::Pending, "the refusal changed nothing");

    // RPCs that do not keep to a campaign refuse it outright, naming why.
    let err = b.campaigns().list_campaigns(authed(&secret, pb::ListCampaignsRequest::default())).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains(&mine), "{}", err.message());
    let err = b.regions().list_regions(authed(&secret, pb::ListRegionsRequest::default())).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn viewers_keys_cannot_cancel_and_only_admins_manage_keys() {
    let b = common::start(&[]).await;
    let region = b.create_region("us-east-1").await;
    let (_, calls) = campaign_with_calls(&b, &region.id, 400, 1).await;
    let viewer_key = create_key(&b, "reports", pb::Role::Viewer, "").await.secret;
    let err = b.calls().transition_call(authed(&viewer_key, cancel(&calls[0]))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let operator = b.user("operator@vox.test", pb::Role::Operator).await;
    let req = pb::CreateApiKeyRequest { name: "mine".into(), role: pb::Role::Admin as i32, campaign_id: String::new() };
    let err = keys(&b).create_api_key(authed(&operator, req)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Bad input names the field and stores nothing.
    for (req, field) in [
        (
            pb::CreateApiKeyRequest { name: " ".into(), role: pb::Role::Viewer as i32, campaign_id: String::new() },
            "name",
        ),
        (pb::CreateApiKeyRequest { name: "x".into(), role: 0, campaign_id: String::new() }, "role"),
        (
            pb::CreateApiKeyRequest {
                name: "x".into(),
                role: pb::Role::Viewer as i32,
                campaign_id: "cp_0000000000000000".into(),
            },
            "campaign_id",
        ),
    ] {
        let err = keys(&b).create_api_key(authed(&b.admin, req)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let listed = keys(&b).list_api_keys(authed(&b.admin, pb::ListApiKeysRequest {})).await.unwrap().into_inner().keys;
    assert_eq!(listed.len(), 1, "only the viewer key");
}
