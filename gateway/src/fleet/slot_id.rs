//! How a worker slot is named: by what it is (worker `index` of fleet node `node_id`),
//! never by where it listens, so two hosts with the same socket or port layout never
//! collide and a worker that comes back on another address keeps its name. Only
//! workers from the static `FLEET_URLS` list, which have no node, go by their URL. An
//! answered outbound call carries its slot and reservation to whichever gateway gets
//! its stream, as `<node_id>/<worker_index>/<reservation_id>`.

/// Which slot: a fleet node's worker, or a static worker by its URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlotId {
    /// Worker `index` of fleet node `node_id`, as voxbridge knows it.
    Worker { node_id: String, index: u32 },
    /// A worker named in `FLEET_URLS`.
    Static(String),
}

impl SlotId {
    /// The host the slot is on: its node, or for a static worker its own URL.
    pub(super) fn host(&self) -> &str {
        match self {
            SlotId::Worker { node_id, .. } => node_id,
            SlotId::Static(url) => url,
        }
    }

    /// `<node_id>/<worker_index>/<reservation_id>` (for a static worker, which its URL
    /// names, `<url>/0/<reservation_id>`): how an answered outbound call names the worker
    /// reserved for it, in its TwiML `<Parameter name="slot">`.
    pub fn with_reservation(&self, reservation_id: &str) -> String {
        match self {
            SlotId::Worker { node_id, index } => format!("{node_id}/{index}/{reservation_id}"),
            SlotId::Static(url) => format!("{url}/0/{reservation_id}"),
        }
    }

    /// The slot and reservation id of a [`SlotId::with_reservation`] value; None when it
    /// is not one.
    pub fn parse_reserved(value: &str) -> Option<(SlotId, String)> {
        let mut parts = value.trim().rsplitn(3, '/');
        let reservation = parts.next()?;
        let index: u32 = parts.next()?.parse().ok()?;
        let head = parts.next()?;
        let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !plain(reservation) || head.is_empty() {
            return None;
        }
        let slot = if vox_domain::ids::has_prefix(head, vox_domain::ids::NODE) {
            SlotId::Worker { node_id: head.to_string(), index }
        } else if head.contains("://") {
            SlotId::Static(head.to_string())
        } else {
            return None;
        };
        Some((slot, reservation.to_string()))
    }
}

impl std::fmt::Display for SlotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotId::Worker { node_id, index } => write!(f, "{node_id}/{index}"),
            SlotId::Static(url) => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slot_parameters_round_trip() {
        let id = SlotId::Worker { node_id: "nd_0123456789abcdef".into(), index: 3 };
        let value = id.with_reservation("rsv_abc");
        assert_eq!(value, "nd_0123456789abcdef/3/rsv_abc");
        assert_eq!(SlotId::parse_reserved(&value), Some((id, "rsv_abc".to_string())));
        let fixed = SlotId::Static("unix:///run/vox/voxcore_1.sock".into());
        let value = fixed.with_reservation("rsv_x");
        assert_eq!(SlotId::parse_reserved(&value), Some((fixed, "rsv_x".to_string())));
        for bad in ["", "rsv_x", "nd_a/x/rsv", "nd_0123456789abcdef/1/", "nd_0123456789abcdef/1/a b", "other/1/rsv"] {
            assert_eq!(SlotId::parse_reserved(bad), None, "{bad:?}");
        }
    }
}
