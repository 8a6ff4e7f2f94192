//! Records as documents: each domain type keeps its own serde shape, with its instants held
//! as BSON dates so the server can compare, sort and index them, and `_id` set to its id.
//!
//! BSON dates hold milliseconds, so an instant is stored to the millisecond. Operations
//! that return what they wrote return it as stored ([`stored`]), so a value handed back
//! always equals the value read back later.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use mongodb::bson::{self, Bson, Document};
use serde::Serialize;
use serde::de::DeserializeOwned;
use vox_domain::Error;
use vox_domain::call::{Call, CallEvent};
use vox_domain::campaign::Campaign;
use vox_domain::node::{AuditEvent, Node};
use vox_domain::region::Region;
use vox_domain::user::User;

/// A domain type stored as one document.
pub(crate) trait Record: Serialize + DeserializeOwned {
    /// Dotted paths of the fields that are instants; each is stored as a BSON date.
    const TIMES: &'static [&'static str];
}

impl Record for Region {
    const TIMES: &'static [&'static str] = &["created_at", "updated_at"];
}

impl Record for Node {
    const TIMES: &'static [&'static str] = &["created_at", "updated_at"];
}

impl Record for AuditEvent {
    const TIMES: &'static [&'static str] = &["at"];
}

impl Record for Campaign {
    const TIMES: &'static [&'static str] = &["created_at", "updated_at"];
}

impl Record for Call {
    const TIMES: &'static [&'static str] =
        &["due_at", "created_at", "updated_at", "state_since", "answered_at", "ended_at", "lease.expires_at"];
}

impl Record for CallEvent {
    const TIMES: &'static [&'static str] = &["at"];
}

impl Record for vox_domain::feed::FeedEvent {
    const TIMES: &'static [&'static str] = &["at"];
}

impl Record for vox_domain::webhook_endpoint::WebhookEndpoint {
    const TIMES: &'static [&'static str] = &["created_at", "updated_at"];
}

impl Record for vox_domain::webhook_endpoint::DeliveryAttempt {
    const TIMES: &'static [&'static str] = &["at"];
}

impl Record for User {
    const TIMES: &'static [&'static str] = &["created_at", "updated_at"];
}

impl Record for vox_domain::api_key::ApiKey {
    const TIMES: &'static [&'static str] = &["created_at", "last_used_at", "revoked_at"];
}

/// The document for `record`, with `_id` set to its `id` field when it has one.
pub(crate) fn encode<R: Record>(record: &R) -> Result<Document, Error> {
    let mut doc = bson::to_document(record).map_err(|e| Error::internal(format!("encode record: {e}")))?;
    for path in R::TIMES {
        if let Some(value) = field_mut(&mut doc, path)
            && let Bson::String(text) = value
        {
            let t = DateTime::parse_from_rfc3339(text)
                .map_err(|e| Error::internal(format!("encode record: {path} {text:?} is not an instant: {e}")))?;
            *value = date(t.to_utc());
        }
    }
    if let Some(id) = doc.get("id").cloned() {
        doc.insert("_id", id);
    }
    Ok(doc)
}

/// The record a stored document holds. Fields the domain type does not know (`_id`, the
/// denormalised query fields) are ignored.
pub(crate) fn decode<R: Record>(mut doc: Document) -> Result<R, Error> {
    for path in R::TIMES {
        if let Some(value) = field_mut(&mut doc, path)
            && let Bson::DateTime(d) = value
        {
            *value = Bson::String(instant(*d).to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
    }
    bson::from_document(doc).map_err(|e| Error::internal(format!("decode stored record: {e}")))
}

/// `record` as it will read back once stored, and its document.
pub(crate) fn stored<R: Record>(record: &R) -> Result<(Document, R), Error> {
    let doc = encode(record)?;
    let back = decode(doc.clone())?;
    Ok((doc, back))
}

/// An instant as a BSON date (to the millisecond, rounding down).
pub(crate) fn date(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_millis(t.timestamp_millis()))
}

/// A BSON date as an instant.
pub(crate) fn instant(d: bson::DateTime) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(d.timestamp_millis()).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// `t` as it reads back from a BSON date.
pub(crate) fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    instant(bson::DateTime::from_millis(t.timestamp_millis()))
}

/// A counter (version, term) as BSON holds it: a signed 64-bit integer.
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An integer field the server may hand back as either width.
pub(crate) fn int_field(doc: &Document, key: &str) -> Result<i64, Error> {
    match doc.get(key) {
        Some(Bson::Int64(n)) => Ok(*n),
        Some(Bson::Int32(n)) => Ok(i64::from(*n)),
        Some(Bson::Double(n)) if n.fract() == 0.0 => Ok(*n as i64),
        other => Err(Error::internal(format!("decode stored record: {key} is {other:?}, not an integer"))),
    }
}

fn field_mut<'d>(doc: &'d mut Document, path: &str) -> Option<&'d mut Bson> {
    let mut parts = path.split('.');
    let mut value = doc.get_mut(parts.next()?)?;
    for part in parts {
        match value {
            Bson::Document(inner) => value = inner.get_mut(part)?,
            _ => return None,
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use chrono::Duration;
    use vox_domain::call::{CallLease, CallState};

    use super::*;

    fn every_instant_set(now: DateTime<Utc>) -> Call {
        let mut call = Call::outbound("cp_1", "rg_1", "+14155550123", "+14155550100", now);
        call.state = CallState::Completed;
        call.lease = Some(CallLease {
            owner: "d1".into(),
            token: "tok".into(),
            expires_at: now + Duration::seconds(30),
            fencing_term: 3,
        });
        call.answered_at = Some(now + Duration::seconds(2));
        call.ended_at = Some(now + Duration::seconds(9));
        call
    }

    /// A string that reads as an instant means a time field missing from `TIMES`.
    fn no_instant_strings(doc: &Document) {
        for (key, value) in doc {
            match value {
                Bson::String(s) => assert!(DateTime::parse_from_rfc3339(s).is_err(), "{key} = {s:?} is stored as text"),
                Bson::Document(inner) => no_instant_strings(inner),
                _ => {}
            }
        }
    }

    #[test]
    fn instants_are_dates_and_round_trip() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap();
        let call = every_instant_set(now);
        let doc = encode(&call).unwrap();
        no_instant_strings(&doc);
        assert_eq!(doc.get_str("_id").unwrap(), call.id);
        assert!(matches!(doc.get_document("lease").unwrap().get("expires_at"), Some(Bson::DateTime(_))));
        assert_eq!(decode::<Call>(doc).unwrap(), call);

        let pending = Call::outbound("cp_1", "rg_1", "+14155550123", "+14155550100", now);
        let doc = encode(&pending).unwrap();
        assert_eq!(doc.get("lease"), Some(&Bson::Null));
        assert_eq!(decode::<Call>(doc).unwrap(), pending);
    }

    #[test]
    fn instants_are_kept_to_the_millisecond() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap() + Duration::nanoseconds(1_234_567);
        let (_, back) = stored(&every_instant_set(now)).unwrap();
        assert_eq!(back.created_at, Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap() + Duration::milliseconds(1));
        assert_eq!(back.created_at, to_millis(now));
        assert_eq!(stored(&back).unwrap().1, back, "a stored value is stable");
    }
}
