//! Access tokens end with the account change that should end them: a new password, a
//! new role, a disabled or deleted account refuse the user's earlier tokens on the very
//! next call (not when they expire), while signing in again gives a working token.
#![allow(clippy::unwrap_used)]

mod common;

use common::{authed, login};
use tonic::Code;
use vox_proto::backend::v1 as pb;

const PASSWORD: &str = "a long enough password";

fn auth(b: &common::Bridge) -> pb::auth_service_client::AuthServiceClient<tonic::transport::Channel> {
    pb::auth_service_client::AuthServiceClient::new(b.channel.clone())
}

/// Creates a user with `role` and returns their id and access token.
async fn signed_in(b: &common::Bridge, email: &str, role: pb::Role) -> (String, String) {
    let token = b.user(email, role).await;
    let me = auth(b).who_am_i(authed(&token, pb::WhoAmIRequest {})).await.unwrap().into_inner();
    (me.id, token)
}

async fn who_am_i(b: &common::Bridge, token: &str) -> Result<pb::User, tonic::Status> {
    auth(b).who_am_i(authed(token, pb::WhoAmIRequest {})).await.map(|r| r.into_inner())
}

async fn update(b: &common::Bridge, change: pb::UpdateUserRequest) {
    b.users().update_user(authed(&b.admin, change)).await.unwrap();
}

fn refused(result: Result<pb::User, tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
}

#[tokio::test]
async fn account_changes_revoke_earlier_tokens_at_once() {
    let b = common::start(&[]).await;

    // A password reset: the old token stops, the new password signs in.
    let (id, token) = signed_in(&b, "reset@vox.test", pb::Role::Operator).await;
    let new_password = "another long enough password";
    update(&b, pb::UpdateUserRequest { id: id.clone(), password: Some(new_password.into()), ..Default::default() })
        .await;
    refused(who_am_i(&b, &token).await, "the token from before the password change");
    let status = b.calls().list_calls(authed(&token, pb::ListCallsRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "every RPC refuses it: {status:?}");
    assert!(login(&b.channel, "reset@vox.test", PASSWORD).await.is_err(), "the old password");
    let fresh = login(&b.channel, "reset@vox.test", new_password).await.unwrap();
    assert_eq!(who_am_i(&b, &fresh).await.unwrap().id, id);

    // A role change: the token that carried the old role stops.
    let (id, token) = signed_in(&b, "demoted@vox.test", pb::Role::Operator).await;
    update(&b, pb::UpdateUserRequest { id: id.clone(), role: Some(pb::Role::Viewer as i32), ..Default::default() })
        .await;
    refused(who_am_i(&b, &token).await, "the token from before the role change");
    let fresh = login(&b.channel, "demoted@vox.test", PASSWORD).await.unwrap();
    assert_eq!(who_am_i(&b, &fresh).await.unwrap().role(), pb::Role::Viewer);

    // Disabling: refused at once, and signing in is refused too. Enabling again does not
    // bring the old token back; a new sign-in works.
    let (id, token) = signed_in(&b, "disabled@vox.test", pb::Role::Viewer).await;
    update(&b, pb::UpdateUserRequest { id: id.clone(), disabled: Some(true), ..Default::default() }).await;
    refused(who_am_i(&b, &token).await, "the token of a disabled account");
    assert_eq!(login(&b.channel, "disabled@vox.test", PASSWORD).await.unwrap_err().code(), Code::Unauthenticated);
    update(&b, pb::UpdateUserRequest { id: id.clone(), disabled: Some(false), ..Default::default() }).await;
    refused(who_am_i(&b, &token).await, "a token from before the account was disabled, after enabling it again");
    let fresh = login(&b.channel, "disabled@vox.test", PASSWORD).await.unwrap();
    assert_eq!(who_am_i(&b, &fresh).await.unwrap().id, id);

    // Deleting: refused at once.
    let (id, token) = signed_in(&b, "deleted@vox.test", pb::Role::Viewer).await;
    b.users().delete_user(authed(&b.admin, pb::DeleteUserRequest { id })).await.unwrap();
    refused(who_am_i(&b, &token).await, "the token of a deleted account");

    // An admin who changes their own password ends their own session too.
    let admin_id = who_am_i(&b, &b.admin).await.unwrap().id;
    update(&b, pb::UpdateUserRequest { id: admin_id, password: Some(new_password.into()), ..Default::default() }).await;
    refused(who_am_i(&b, &b.admin).await, "the admin's token from before their own password change");
    login(&b.channel, common::ADMIN_EMAIL, new_password).await.unwrap();
}

#[tokio::test]
async fn edits_that_change_no_credential_keep_tokens() {
    let b = common::start(&[]).await;
    let (id, token) = signed_in(&b, "kept@vox.test", pb::Role::Operator).await;
    // Setting the same role and status again changes nothing that matters.
    update(
        &b,
        pb::UpdateUserRequest {
            id: id.clone(),
            role: Some(pb::Role::Operator as i32),
            disabled: Some(false),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(who_am_i(&b, &token).await.unwrap().id, id);
}
