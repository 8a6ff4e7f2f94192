//! Vox's webhook signatures checked by the Standard Webhooks reference library (PyPI
//! `standardwebhooks`, installed by `ops/install-test-deps.sh`), and the library's own
//! signatures checked by Vox: both sides of the specification agree.
#![allow(clippy::unwrap_used, reason = "test: a failed step stops it with its error")]

use std::process::Command;

use vox_domain::webhook::{self, SigningSecret};

/// Runs `script` with the reference library; its stdout, or a failure with its words.
fn python(script: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("python3").arg("-c").arg(script).args(args).output().expect("run python3");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

const VERIFY: &str = r#"
import sys
from standardwebhooks.webhooks import Webhook
secret, msg_id, ts, sig, body = sys.argv[1:6]
Webhook(secret).verify(body, {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sig})
print("verified")
"#;

#[test]
fn the_reference_library_verifies_what_vox_signs_and_refuses_tampering() {
    if let Err(e) = python("import standardwebhooks", &[]) {
        panic!("the Standard Webhooks reference library is missing (run `bash ops/install-test-deps.sh`): {e}");
    }
    let (old, old_text) = SigningSecret::generate();
    let (new, new_text) = SigningSecret::generate();
    let body = r#"{"type":"call.ended","data":{"call_id":"ca_0123456789abcdef","disposition":"completed"}}"#;
    let now = chrono::Utc::now().timestamp();
    let [(_, id), (_, ts), (_, sig)] = webhook::headers(&[old, new], "evt_42", now, body.as_bytes());
    // Mid-rotation, a receiver with either secret accepts the delivery.
    for secret in [&old_text, &new_text] {
        assert_eq!(python(VERIFY, &[secret, &id, &ts, &sig, body]).unwrap().trim(), "verified");
    }
    let tampered = body.replace("completed", "abandoned");
    assert!(python(VERIFY, &[&new_text, &id, &ts, &sig, &tampered]).is_err(), "a changed body is refused");
    assert!(python(VERIFY, &[&new_text, "evt_43", &ts, &sig, body]).is_err(), "another id is refused");
    let (_, stranger) = SigningSecret::generate();
    assert!(python(VERIFY, &[&stranger, &id, &ts, &sig, body]).is_err(), "another secret is refused");
    let old_ts = (now - 600).to_string();
    let [_, _, (_, stale_sig)] =
        webhook::headers(&[SigningSecret::parse("s", &new_text).unwrap()], "evt_42", now - 600, body.as_bytes());
    assert!(
        python(VERIFY, &[&new_text, &id, &old_ts, &stale_sig, body]).is_err(),
        "a replay 10 minutes late is refused"
    );
}

#[test]
fn vox_verifies_what_the_reference_library_signs() {
    let (secret, text) = SigningSecret::generate();
    let now = chrono::Utc::now().timestamp();
    let sign = r#"
import sys, datetime
from standardwebhooks.webhooks import Webhook
secret, msg_id, ts, body = sys.argv[1:5]
print(Webhook(secret).sign(msg_id, datetime.datetime.fromtimestamp(int(ts), tz=datetime.timezone.utc), body))
"#;
    let body = r#"{"type":"call.answered"}"#;
    let sig = python(sign, &[&text, "evt_7", &now.to_string(), body])
        .unwrap_or_else(|e| panic!("the reference library could not sign (run `bash ops/install-test-deps.sh`): {e}"));
    webhook::verify(&secret, "evt_7", &now.to_string(), sig.trim(), body.as_bytes(), now).unwrap();
}
