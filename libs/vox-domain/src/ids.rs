//! Object ids: a short type prefix and 16 random base-32 characters (80 bits), e.g.
//! `rg_5kq3w9x2m1c8v7bz`. The prefix tells an operator what an id names at a glance.

use rand::Rng;

pub(crate) const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

pub const REGION: &str = "rg";
pub const NODE: &str = "nd";
pub const CAMPAIGN: &str = "cp";
pub const CALL: &str = "ca";
pub const USER: &str = "us";
pub const AUDIT: &str = "au";
pub const LEASE: &str = "ls";
pub const WEBHOOK: &str = "wh";
/// Error ids: what a client is told instead of an internal failure's details, which are
/// logged under the id (`err_` and 12 characters, 60 bits: unique enough to grep a log).
pub const ERROR: &str = "err";
/// Characters of an error id after `err_`.
pub const ERROR_ID_LEN: usize = 12;

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_token(16))
}

/// A fresh error id, e.g. `err_5kq3w9x2m1c8`.
pub fn new_error_id() -> String {
    format!("{ERROR}_{}", random_token(ERROR_ID_LEN))
}

/// `len` random characters of the id alphabet.
pub fn random_token(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// True when `id` has the given prefix and the shape [`new_id`] makes.
pub fn has_prefix(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| body.len() == 16 && body.bytes().all(|b| ALPHABET.contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_prefix_and_differ() {
        let a = new_id(REGION);
        let b = new_id(REGION);
        assert!(has_prefix(&a, REGION), "{a}");
        assert_ne!(a, b);
        assert!(!has_prefix(&a, NODE));
        assert!(!has_prefix("rg_short", REGION));
    }

    #[test]
    fn error_ids_are_short_and_differ() {
        let a = new_error_id();
        assert_eq!(a.len(), "err_".len() + ERROR_ID_LEN, "{a}");
        assert!(a.starts_with("err_") && a[4..].bytes().all(|b| ALPHABET.contains(&b)), "{a}");
        assert_ne!(a, new_error_id());
    }
}
