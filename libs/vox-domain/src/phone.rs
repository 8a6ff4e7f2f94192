//! E.164 phone numbers.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A number in E.164 form: `+`, a country code starting 1-9, at most 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

impl E164 {
    /// Accepts the number with the usual separators (spaces, dashes, dots, parentheses)
    /// and returns it normalised. Why a number is refused is the `Err` text.
    pub fn parse(input: &str) -> std::result::Result<Self, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("empty; expected an E.164 number such as +14155550123".into());
        }
        let Some(rest) = trimmed.strip_prefix('+') else {
            return Err(format!("{trimmed:?} has no leading '+'; expected an E.164 number such as +14155550123"));
        };
        let mut digits = String::with_capacity(15);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                other => return Err(format!("{trimmed:?} contains {other:?}; only digits may follow '+'")),
            }
        }
        if digits.starts_with('0') {
            return Err(format!("{trimmed:?}: a country code never starts with 0"));
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(format!("{trimmed:?} has {} digits; E.164 numbers have 8 to 15", digits.len()));
        }
        Ok(E164(format!("+{digits}")))
    }

    /// Parses a request field, naming it in the error.
    pub fn field(field: &str, input: &str) -> Result<Self> {
        E164::parse(input).map_err(|why| Error::invalid(field, why))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for E164 {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        E164::parse(&s)
    }
}

impl From<E164> for String {
    fn from(n: E164) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(E164::parse("+1 (415) 555-0123").unwrap().as_str(), "+14155550123");
        assert_eq!(E164::parse(" +96899123456 ").unwrap().as_str(), "+96899123456");
    }

    #[test]
    fn refuses_with_reasons() {
        assert!(E164::parse("4155550123").unwrap_err().contains("no leading '+'"));
        assert!(E164::parse("+0123456789").unwrap_err().contains("never starts with 0"));
        assert!(E164::parse("+1234").unwrap_err().contains("8 to 15"));
        assert!(E164::parse("+1234567890123456").unwrap_err().contains("8 to 15"));
        assert!(E164::parse("+1415555O123").unwrap_err().contains("'O'"));
        assert!(E164::parse("").unwrap_err().contains("empty"));
    }
}
