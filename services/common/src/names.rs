//! Names that come from outside, validated once at the edge.
//!
//! A value of one of these types is always valid, so the code behind the edge
//! never checks again.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a name was refused. The message names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct NameError {
    pub kind: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Rule for catalog identifiers (streams, organizations, clusters): 1 to 63
/// characters of lowercase ASCII letters, digits, `.`, `_` and `-`, starting
/// with a letter or digit. They appear in URLs, topic names and file names,
/// so nothing that needs escaping is allowed.
fn check_identifier(kind: &'static str, value: &str) -> Result<(), NameError> {
    let refuse = |reason| {
        Err(NameError {
            kind,
            value: value.chars().take(80).collect(),
            reason,
        })
    };
    if value.is_empty() {
        return refuse("must not be empty");
    }
    if value.len() > 63 {
        return refuse("must be at most 63 characters");
    }
    let first = value.as_bytes()[0];
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return refuse("must start with a lowercase letter or a digit");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return refuse("may contain only lowercase letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Kafka's own rule for topic names: 1 to 249 characters of ASCII letters,
/// digits, `.`, `_` and `-`, and not `.` or `..`.
fn check_topic(value: &str) -> Result<(), NameError> {
    let refuse = |reason| {
        Err(NameError {
            kind: "topic",
            value: value.chars().take(80).collect(),
            reason,
        })
    };
    if value.is_empty() {
        return refuse("must not be empty");
    }
    if value.len() > 249 {
        return refuse("must be at most 249 characters");
    }
    if value == "." || value == ".." {
        return refuse("must not be '.' or '..'");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return refuse("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                ($check)(&value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = String::deserialize(d)?;
                Self::parse(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A stream's name in the catalog, unique across the hub.
    StreamName,
    "stream name",
    |v: &str| check_identifier("stream name", v)
);
name_type!(
    /// An organization's name: a business unit or a partner.
    OrgName,
    "organization name",
    |v: &str| check_identifier("organization name", v)
);
name_type!(
    /// The name under which a Kafka cluster is configured.
    ClusterName,
    "cluster name",
    |v: &str| check_identifier("cluster name", v)
);
/// The JSON Schema of an identifier type, for configuration files.
macro_rules! identifier_schema {
    ($name:ident) => {
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": "^[a-z0-9][a-z0-9._-]{0,62}$",
                })
            }
        }
    };
}
identifier_schema!(ClusterName);
identifier_schema!(OrgName);

name_type!(
    /// A Kafka topic name.
    TopicName,
    "topic",
    check_topic
);

/// Topics whose names start with this belong to the hub itself (dead
/// letters, the catalog's own log): nobody registers them as a stream,
/// produces to them, reads them or names them as a destination.
pub const RESERVED_TOPIC_PREFIX: &str = "freeport.";

/// Whether `topic` is one of the hub's own ([`RESERVED_TOPIC_PREFIX`]).
/// Kafka topic names are case-sensitive, but `Freeport.x` would still
/// read as the hub's to a person, so the prefix is matched ignoring case.
pub fn is_reserved_topic(topic: &str) -> bool {
    topic
        .get(..RESERVED_TOPIC_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(RESERVED_TOPIC_PREFIX))
}

impl TopicName {
    /// See [`is_reserved_topic`].
    pub fn is_reserved(&self) -> bool {
        is_reserved_topic(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["orders", "local-a", "a", "b2b.orders_v1", &"x".repeat(63)] {
            StreamName::parse(ok).unwrap();
        }
        for ok in ["Orders.V1", "partner.orders", "a_b-c", &"t".repeat(249)] {
            TopicName::parse(ok).unwrap();
        }
    }

    #[test]
    fn refuses_with_the_offending_value() {
        let err = StreamName::parse("Orders").unwrap_err();
        assert_eq!(err.value, "Orders");
        assert!(err.to_string().contains("\"Orders\""), "{err}");
        for bad in ["", "-x", "a b", "a/b", "ü", &"x".repeat(64)] {
            assert!(OrgName::parse(bad).is_err(), "{bad:?} accepted");
        }
        for bad in ["", ".", "..", "a b", "a/b", &"t".repeat(250)] {
            assert!(TopicName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_hubs_own_topics_are_reserved() {
        for reserved in [
            "freeport.dlq.x",
            "freeport.catalog",
            "Freeport.x",
            "FREEPORT.",
        ] {
            assert!(is_reserved_topic(reserved), "{reserved}");
        }
        for free in [
            "freeport",
            "freeportx",
            "orders",
            "partner.freeport.x",
            "fr",
        ] {
            assert!(!is_reserved_topic(free), "{free}");
        }
        assert!(TopicName::parse("freeport.dlq.1").unwrap().is_reserved());
    }

    #[test]
    fn deserialize_validates() {
        let ok: StreamName = serde_json::from_str("\"orders\"").unwrap();
        assert_eq!(ok.as_str(), "orders");
        assert!(serde_json::from_str::<StreamName>("\"NO\"").is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn parsing_never_panics_and_accepts_exactly_the_rule(value in "\\PC{0,80}") {
                let valid = !value.is_empty()
                    && value.len() <= 63
                    && value.as_bytes()[0].is_ascii_alphanumeric()
                    && !value.as_bytes()[0].is_ascii_uppercase()
                    && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
                prop_assert_eq!(StreamName::parse(value.clone()).is_ok(), valid);
                let topic_valid = !value.is_empty()
                    && value.len() <= 249
                    && value != "."
                    && value != ".."
                    && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                prop_assert_eq!(TopicName::parse(value).is_ok(), topic_valid);
            }

            #[test]
            fn valid_names_round_trip(value in "[a-z0-9][a-z0-9._-]{0,62}") {
                let name = OrgName::parse(value.clone()).unwrap();
                prop_assert_eq!(name.to_string(), value.clone());
                let json = serde_json::to_string(&name).unwrap();
                prop_assert_eq!(serde_json::from_str::<OrgName>(&json).unwrap(), name);
            }

            #[test]
            fn refusals_name_the_value(value in "[A-Z /]{1,20}") {
                let err = ClusterName::parse(value.clone()).unwrap_err();
                prop_assert_eq!(err.value, value);
            }
        }
    }
}
