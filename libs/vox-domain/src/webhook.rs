//! Outgoing webhooks signed as the Standard Webhooks specification says
//! (<https://www.standardwebhooks.com>): every delivery carries `webhook-id` (the event's
//! id, the same on every retry, so a receiver can drop duplicates), `webhook-timestamp`
//! (Unix seconds of this attempt) and `webhook-signature`, a space-separated list of
//! `v1,<base64 HMAC-SHA256>` over `<id>.<timestamp>.<body>`, one per secret the endpoint
//! has: while a secret is being rotated both are valid, so receivers switch without a gap.
//!
//! Secrets are `whsec_` + base64 of 32 random bytes; the key is the decoded bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Error, Result};

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// How far a receiver lets a timestamp be from its own clock (the specification's 5 min).
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// One endpoint's signing secret. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

impl SigningSecret {
    /// A fresh secret and its text (`whsec_…`), to show the endpoint's owner once.
    pub fn generate() -> (SigningSecret, String) {
        let mut key = vec![0u8; 32];
        rand::fill(&mut key[..]);
        let text = format!("{SECRET_PREFIX}{}", B64.encode(&key));
        (SigningSecret { key }, text)
    }

    /// A secret as given (`whsec_<base64>`); `field` names it in the error.
    pub fn parse(field: &str, text: &str) -> Result<SigningSecret> {
        let encoded = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            Error::invalid(field, format!("a signing secret starts with {SECRET_PREFIX} (Standard Webhooks)"))
        })?;
        let key = B64
            .decode(encoded)
            .map_err(|_| Error::invalid(field, format!("the part after {SECRET_PREFIX} is not base64")))?;
        if !(24..=64).contains(&key.len()) {
            return Err(Error::invalid(field, format!("a key of 24 to 64 bytes, not {}", key.len())));
        }
        Ok(SigningSecret { key })
    }

    /// `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.
    fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}

/// The three headers of one delivery of `body` as event `id` at `timestamp` (Unix
/// seconds), signed with every one of `secrets`.
pub fn headers(secrets: &[SigningSecret], id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
    let signatures: Vec<String> = secrets.iter().map(|s| s.signature(id, timestamp, body)).collect();
    [
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signatures.join(" ")),
    ]
}

/// What a receiver checks: a `v1` signature by `secret` among those given, and a timestamp
/// within [`TOLERANCE_SECONDS`] of `now`. Compares in constant time.
pub fn verify(
    secret: &SigningSecret,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<()> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| Error::invalid("webhook-timestamp", "Unix seconds"))?;
    if (now - ts).abs() > TOLERANCE_SECONDS {
        return Err(Error::invalid("webhook-timestamp", "more than 5 minutes from now: a replay, or a wrong clock"));
    }
    let expected = secret.signature(id, ts, body);
    let found = signatures.split(' ').any(|given| {
        given.len() == expected.len() && subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into()
    });
    if found { Ok(()) } else { Err(Error::invalid("webhook-signature", "no v1 signature matches this secret")) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use super::*;

    /// The example of the specification's reference libraries.
    #[test]
    fn signs_the_reference_example() {
        let secret = SigningSecret::parse("secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let [_, _, (_, signature)] =
            headers(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_secret_signs_and_a_receiver_with_either_accepts() {
        let (old, _) = SigningSecret::generate();
        let (new, text) = SigningSecret::generate();
        assert!(text.starts_with("whsec_") && SigningSecret::parse("s", &text).unwrap() == new);
        let [(_, id), (_, ts), (_, sigs)] = headers(&[old.clone(), new.clone()], "ev_1", 1_700_000_000, b"{}");
        assert_eq!(sigs.split(' ').count(), 2);
        for s in [&old, &new] {
            verify(s, &id, &ts, &sigs, b"{}", 1_700_000_010).unwrap();
        }
        let (stranger, _) = SigningSecret::generate();
        assert!(verify(&stranger, &id, &ts, &sigs, b"{}", 1_700_000_010).is_err());
        assert!(verify(&new, &id, &ts, &sigs, b"{ }", 1_700_000_010).is_err(), "a changed body");
        assert!(verify(&new, "ev_2", &ts, &sigs, b"{}", 1_700_000_010).is_err(), "another id");
        let late = verify(&new, &id, &ts, &sigs, b"{}", 1_700_000_000 + 301).unwrap_err();
        assert!(late.message.contains("5 minutes"), "{late:?}");
    }

    #[test]
    fn bad_secrets_say_what_is_expected() {
        for (text, words) in [("abc", "whsec_"), ("whsec_***", "base64"), ("whsec_AAAA", "24 to 64 bytes")] {
            let e = SigningSecret::parse("secret", text).unwrap_err();
            assert!(e.message.contains(words) && e.message.contains("secret"), "{text}: {e:?}");
        }
        assert_eq!(format!("{:?}", SigningSecret::generate().0), "SigningSecret(..)");
    }
}
