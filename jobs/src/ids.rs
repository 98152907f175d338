//! Identifiers parsed once at the edge, so inner code never sees an unvalidated one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a header value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {0} characters")]
    TooLong(usize),
    #[error("contains characters outside {0}")]
    BadCharacters(&'static str),
}

/// A non-empty token of at most `max_len` bytes, each one `allowed`.
fn token(
    raw: &str,
    max_len: usize,
    described: &'static str,
    allowed: impl Fn(u8) -> bool,
) -> Result<String, IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > max_len {
        return Err(IdError::TooLong(max_len));
    }
    if !raw.bytes().all(allowed) {
        return Err(IdError::BadCharacters(described));
    }
    Ok(raw.to_owned())
}

/// GitHub's `X-GitHub-Delivery` GUID. A redelivery keeps the GUID, which is what makes it
/// the deduplication key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeliveryId(String);

impl DeliveryId {
    /// GitHub sends UUIDs (36 characters); GitHub Enterprise and tests may send other tokens,
    /// so accept any short token of letters, digits, `-`, `_` and `.`.
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        token(raw, Self::MAX_LEN, "[A-Za-z0-9._-]", |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
        })
        .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeliveryId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DeliveryId> for String {
    fn from(value: DeliveryId) -> Self {
        value.0
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// GitHub's `X-GitHub-Event` name, e.g. `pull_request`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventName(String);

impl EventName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        token(raw, Self::MAX_LEN, "[a-z0-9_]", |b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
        })
        .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_guid_like_tokens() {
        assert!(DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0958").is_ok());
        assert_eq!(DeliveryId::parse(""), Err(IdError::Empty));
        assert!(matches!(
            DeliveryId::parse("a b"),
            Err(IdError::BadCharacters(_))
        ));
        assert!(matches!(
            DeliveryId::parse(&"a".repeat(101)),
            Err(IdError::TooLong(100))
        ));
    }

    #[test]
    fn delivery_ids_refuse_bad_values_when_deserialized() {
        assert!(serde_json::from_str::<DeliveryId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<DeliveryId>("\"no way\"").is_err());
    }

    #[test]
    fn event_names_are_snake_case() {
        assert!(EventName::parse("pull_request_review").is_ok());
        assert!(EventName::parse("Pull-Request").is_err());
        assert_eq!(EventName::parse(""), Err(IdError::Empty));
    }
}
