//! Conversions between chrono time and protobuf timestamps.

use chrono::{DateTime, TimeZone, Utc};

pub fn to_proto(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub fn from_proto(field: &str, t: &prost_types::Timestamp) -> crate::Result<DateTime<Utc>> {
    Utc.timestamp_opt(t.seconds, t.nanos.max(0) as u32)
        .single()
        .ok_or_else(|| crate::Error::invalid(field, "a timestamp between years 0 and 9999"))
}
