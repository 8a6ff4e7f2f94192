//! `ImportNumbers` against a real voxbridge, as voxgate or grpcurl would call it: batches
//! land together with the caller's row numbers, and a stream that breaks off, carries a
//! batch too large or too many rows in all stores nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Bridge, authed};
use vox_proto::backend::v1 as pb;

async fn campaign(b: &Bridge) -> String {
    let region = b.create_region("us-east-1").await;
    let req = pb::CreateCampaignRequest { spec: Some(common::campaign_spec(&region.id)) };
    b.campaigns().create_campaign(authed(&b.admin, req)).await.unwrap().into_inner().id
}

async fn total(b: &Bridge, id: &str) -> u64 {
    let c = b.campaigns().get_campaign(authed(&b.admin, pb::GetCampaignRequest { id: id.into() })).await.unwrap();
    c.into_inner().counts.unwrap().total
}

/// `n` batches of `size` numbers, the first naming the campaign; rows counted by voxbridge.
fn batches(campaign: &str, n: usize, size: usize) -> Vec<pb::ImportNumbersRequest> {
    (0..n)
        .map(|b| pb::ImportNumbersRequest {
            campaign_id: if b == 0 { campaign.into() } else { String::new() },
            numbers: (0..size).map(|i| format!("+1415{:07}", b * size + i)).collect(),
            rows: Vec::new(),
        })
        .collect()
}

/// Sends `batches` and returns voxbridge's last reply (`done`) or its refusal.
async fn import(b: &Bridge, batches: Vec<pb::ImportNumbersRequest>) -> Result<pb::AddNumbersResponse, tonic::Status> {
    let mut replies = b.campaigns().import_numbers(authed(&b.admin, tokio_stream::iter(batches))).await?.into_inner();
    while let Some(reply) = replies.message().await? {
        if let Some(pb::import_numbers_reply::Reply::Done(done)) = reply.reply {
            return Ok(done);
        }
    }
    panic!("the replies ended without `done`")
}

#[tokio::test]
async fn batches_land_together_under_the_callers_rows() {
    let b = common::start(&[]).await;
    let id = campaign(&b).await;
    let mut sent = batches(&id, 3, 5_000);
    // The file's rows: a header on row 1, so numbers start on row 2; one bad number, and
    // one repeat of the first number in the last batch.
    let mut row = 1;
    for batch in &mut sent {
        batch.rows = batch
            .numbers
            .iter()
            .map(|_| {
                row += 1;
                row
            })
            .collect();
    }
    sent[1].numbers[10] = "not a number".into();
    sent[2].numbers[4_999] = sent[0].numbers[0].clone();
    let done = import(&b, sent).await.unwrap();
    assert_eq!((done.accepted, done.rejected_count), (14_998, 2), "{done:?}");
    assert_eq!((done.rejected[0].row, done.rejected[0].input.as_str()), (5_012, "not a number"));
    assert_eq!((done.rejected[1].row, done.rejected[1].reason.as_str()), (15_001, "duplicate of row 2"));
    assert_eq!(total(&b, &id).await, 14_998);
}

/// A TCP relay to `to` for one connection, cut (both sockets dropped) when `cut` fires:
/// what voxbridge sees when the caller's machine or process dies.
async fn cuttable_relay(to: std::net::SocketAddr) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (cut, cut_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut server = tokio::net::TcpStream::connect(to).await.unwrap();
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
            _ = cut_rx => {}
        }
    });
    (url, cut)
}

#[tokio::test]
async fn an_upload_that_breaks_off_stores_nothing() {
    let b = common::start(&[]).await;
    let id = campaign(&b).await;
    let addr = b.process.url().trim_start_matches("http://").parse().unwrap();
    let (url, cut) = cuttable_relay(addr).await;
    let channel = tonic::transport::Channel::from_shared(url).unwrap().connect().await.unwrap();
    // Three batches, and the stream left open: more are coming, until the connection dies.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    for batch in batches(&id, 3, 5_000) {
        tx.send(batch).await.unwrap();
    }
    let mut campaigns = pb::campaign_service_client::CampaignServiceClient::new(channel);
    let request = authed(&b.admin, tokio_stream::wrappers::ReceiverStream::new(rx));
    // The answer's headers come once the caller is authenticated; the batches follow.
    let _replies = campaigns.import_numbers(request).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cut.send(()).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(total(&b, &id).await, 0, "nothing of an upload that broke off is stored");
    drop(tx);
}

#[tokio::test]
async fn voxbridge_caps_each_batch_and_the_whole_upload() {
    let b = common::start(&[]).await;
    let id = campaign(&b).await;

    let e = import(&b, batches(&id, 1, 5_001)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(e.message(), "numbers: message 1 has 5001 rows; at most 5000 a message");

    let e = import(&b, batches(&id, 41, 5_000)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(e.message(), "numbers: more than 200000 rows; upload at most 200000 at a time");

    let mut backwards = batches(&id, 2, 10);
    backwards[1].rows = (1..=10).collect();
    let e = import(&b, backwards).await.unwrap_err();
    assert_eq!(e.message(), "rows: row 1 comes after row 10 (message 2); rows must ascend from 1");

    let mut other = batches(&id, 2, 10);
    other[1].campaign_id = "cp_another".into();
    let e = import(&b, other).await.unwrap_err();
    assert!(e.message().starts_with("campaign_id: message 2 names \"cp_another\""), "{}", e.message());
    assert_eq!(total(&b, &id).await, 0, "no refused upload stored anything");

    // Without a token nothing is read at all.
    let e = b.campaigns().import_numbers(tokio_stream::iter(batches(&id, 1, 10))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
}
