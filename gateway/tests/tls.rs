//! TLS at the edge: voxgate serving HTTPS/WSS itself (`--tls-cert`, `--tls-key`). A
//! client that trusts the test CA streams a Twilio call through it; one that does not
//! fails the handshake; a renewed certificate is served without a restart.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vox_proto::backend::v1 as bpb;
use vox_testkit::ServerProcess;
use vox_testkit::tls::TestCa;
use vox_testkit::twilio::twiml_stream;

/// A client TLS configuration whose only trusted roots are `roots` (PEM files).
fn trusting(roots: &[&Path]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(CertificateDer::from_pem_file(root).unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

/// A TLS connection to `addr` as `127.0.0.1`, and the certificate the server showed.
async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<(TlsStream<TcpStream>, Vec<u8>), String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let shown = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    Ok((tls, shown))
}

fn der_of(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem).unwrap().to_vec()
}

/// Starts voxgate with `--tls-cert`/`--tls-key` and waits for `GET https://…/health`.
async fn start_tls_gate(c: &Cluster, cert: &Path, key: &Path, ca: &Path) -> (ServerProcess, reqwest::Client) {
    let secret = c.register_gateway().await;
    let tls_args: Vec<String> =
        ["--tls-cert", &cert.display().to_string(), "--tls-key", &key.display().to_string()].map(String::from).into();
    let (args, env) = gate_command(&c.bridge.url(), &secret, &tls_args, &[]);
    let gate = ServerProcess::start_listening(
        "voxgate-tls",
        Path::new(env!("CARGO_BIN_EXE_voxgate")),
        &args,
        &env,
        c.dir.path(),
    )
    .await
    .unwrap();
    let https = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://{}", gate.addr);
    until("voxgate healthy over https with a slot", async || {
        let health: serde_json::Value = https.get(format!("{base}/health")).send().await.ok()?.json().await.ok()?;
        (health["fleet_available"] == 1).then_some(())
    })
    .await;
    (gate, https)
}

#[tokio::test]
async fn a_wss_client_that_trusts_the_ca_streams_a_call_and_a_renewed_certificate_needs_no_restart() {
    let c = cluster(1).await;
    let pki: PathBuf = c.dir.path().join("pki");
    let ca = TestCa::new(&pki, "edge").unwrap();
    let cert = ca.server_cert("gate", &["127.0.0.1", "localhost"]).unwrap();
    let (gate, https) = start_tls_gate(&c, &cert.cert, &cert.key, &ca.ca_pem).await;
    let base = format!("https://{}", gate.addr);

    // The carrier's voice webhook over HTTPS: the TwiML streams to wss://.
    let url = format!("{base}/twilio/voice");
    let params: Vec<(String, String)> = [("CallSid", "CA-tls-1"), ("From", "+14155550199"), ("To", "+14155550100")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    let twiml = https
        .post(&url)
        .header("x-twilio-signature", voxgate::media::twilio::signature(TOKEN, &url, &params))
        .form(&params)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (stream_url, custom) = twiml_stream(&twiml);
    assert_eq!(stream_url, format!("wss://{}/media/twilio", gate.addr), "{twiml}");
    let call_id = custom["call_id"].as_str().unwrap().to_string();
    // So does a web session's socket.
    let session: serde_json::Value =
        https.post(format!("{base}/web/sessions")).bearer_auth(&c.admin).send().await.unwrap().json().await.unwrap();
    assert!(session["ws_url"].as_str().unwrap().starts_with(&format!("wss://{}/media/web?token=", gate.addr)));

    // A Twilio media stream over WSS, trusting only the test CA.
    let (tls, shown) = tls_connect(gate.addr, trusting(&[&ca.ca_pem])).await.unwrap();
    assert_eq!(shown, der_of(&cert.cert));
    let mut req = stream_url.as_str().into_client_request().unwrap();
    let sig = voxgate::media::twilio::signature(TOKEN, &stream_url, &[]);
    req.headers_mut().insert("x-twilio-signature", sig.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    start_with(&mut ws, serde_json::Value::Object(custom)).await;
    for i in 0..3 {
        media(&mut ws, i).await;
    }
    assert_eq!(recv(&mut ws).await.unwrap()["event"], "media", "the echo agent answered over WSS");
    assert_eq!(c.call(&call_id).await.state(), bpb::CallState::InProgress);
    stop(&mut ws).await;
    assert_eq!(until_closed(&mut ws).await.0, 1000);

    // A client that does not trust the CA fails the handshake: no roots, or another CA.
    let none = tls_connect(gate.addr, trusting(&[])).await.unwrap_err();
    assert!(none.to_lowercase().contains("certificate"), "{none}");
    let other = TestCa::new(&c.dir.path().join("other-pki"), "other").unwrap();
    let wrong = tls_connect(gate.addr, trusting(&[&other.ca_pem])).await.unwrap_err();
    assert!(wrong.to_lowercase().contains("certificate"), "{wrong}");

    // A renewed certificate (same files, new serial) is what new connections see, with
    // no restart.
    let before = der_of(&cert.cert);
    let renewed = ca.server_cert("gate", &["127.0.0.1", "localhost"]).unwrap();
    let after = der_of(&renewed.cert);
    assert_ne!(before, after);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, shown) = tls_connect(gate.addr, trusting(&[&ca.ca_pem])).await.unwrap();
        if shown == after {
            break;
        }
        assert_eq!(shown, before, "only the old or the new certificate is ever served");
        assert!(Instant::now() < deadline, "the renewed certificate was not served within 15 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let health = https.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the same process serves on");
}
