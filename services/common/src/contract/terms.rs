//! A contract's terms: what the partner receives of each record, and for
//! how long. The catalog checks them; the link and the portal apply them
//! ([`crate::terms::Reshaper`]).
//!
//! Fields are JSON pointers into the record value (`/customer/email`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::check_field;

/// Most fields one contract may name across all its lists.
const MAX_FIELDS: usize = 100;
/// Consumer groups one contract may translate offsets for.
pub const MAX_CONSUMER_GROUPS: usize = 16;
/// Highest rate limit one may set, in records per second.
pub const MAX_RATE: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    /// The field's value is one of an array of values.
    In,
}

impl FilterOp {
    pub fn parse(text: &str) -> Option<FilterOp> {
        Some(match text {
            "eq" => FilterOp::Eq,
            "ne" => FilterOp::Ne,
            "lt" => FilterOp::Lt,
            "lte" => FilterOp::Lte,
            "gt" => FilterOp::Gt,
            "gte" => FilterOp::Gte,
            "in" => FilterOp::In,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FilterOp::Eq => "eq",
            FilterOp::Ne => "ne",
            FilterOp::Lt => "lt",
            FilterOp::Lte => "lte",
            FilterOp::Gt => "gt",
            FilterOp::Gte => "gte",
            FilterOp::In => "in",
        }
    }
}

/// Keep a record only when `field op value` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCondition {
    pub field: String,
    pub op: FilterOp,
    pub value: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractTerms {
    /// Removed from every record.
    #[serde(default)]
    pub drop_fields: Vec<String>,
    /// Replaced by a fixed mask.
    #[serde(default)]
    pub mask_fields: Vec<String>,
    /// Replaced by a keyed hash, so equal values still match.
    #[serde(default)]
    pub hash_fields: Vec<String>,
    /// Every condition must hold for a record to be delivered.
    #[serde(default)]
    pub row_filter: Vec<RowCondition>,
    /// When the contract expires, in milliseconds since the epoch.
    #[serde(default)]
    pub end_time_ms: Option<i64>,
    #[serde(default)]
    pub max_records_per_second: Option<u32>,
    /// Consumer groups whose committed offsets are translated to the
    /// destination and committed there under the same names.
    #[serde(default)]
    pub consumer_groups: Vec<String>,
}

/// Every problem with a set of terms, each naming the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid contract terms: {}", .0.join("; "))]
pub struct TermsError(pub Vec<String>);

impl ContractTerms {
    /// Checks the terms against the stream's value schema; reports every
    /// problem at once.
    pub fn validate(&self, value_schema: &Value, now_ms: i64) -> Result<(), TermsError> {
        let mut problems = Vec::new();
        let lists = [
            ("drop_fields", &self.drop_fields),
            ("mask_fields", &self.mask_fields),
            ("hash_fields", &self.hash_fields),
        ];
        let total: usize =
            lists.iter().map(|(_, l)| l.len()).sum::<usize>() + self.row_filter.len();
        if total > MAX_FIELDS {
            problems.push(format!("{total} fields named; the limit is {MAX_FIELDS}"));
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (list, fields) in lists {
            for field in fields {
                check_field(list, field, value_schema, &mut problems);
                if let Some((other, _)) = seen.iter().find(|(_, f)| *f == field.as_str()) {
                    problems.push(format!("{list}: {field:?} is already in {other}"));
                } else {
                    seen.push((list, field));
                }
            }
        }
        for (i, condition) in self.row_filter.iter().enumerate() {
            let at = format!("row_filter[{i}]");
            check_field(&at, &condition.field, value_schema, &mut problems);
            match (condition.op, &condition.value) {
                (FilterOp::In, Value::Array(values)) if !values.is_empty() => {}
                (FilterOp::In, _) => {
                    problems.push(format!("{at}: 'in' needs a non-empty array of values"))
                }
                (
                    FilterOp::Lt | FilterOp::Lte | FilterOp::Gt | FilterOp::Gte,
                    Value::Number(_) | Value::String(_),
                ) => {}
                (FilterOp::Lt | FilterOp::Lte | FilterOp::Gt | FilterOp::Gte, other) => problems
                    .push(format!(
                        "{at}: '{}' compares numbers or strings, not {other}",
                        condition.op.as_str()
                    )),
                (FilterOp::Eq | FilterOp::Ne, _) => {}
            }
        }
        if let Some(end) = self.end_time_ms {
            if end <= now_ms {
                problems.push(format!("end_time {end} ms is not in the future"));
            }
        }
        if self.consumer_groups.len() > MAX_CONSUMER_GROUPS {
            problems.push(format!(
                "{} consumer groups named; the limit is {MAX_CONSUMER_GROUPS}",
                self.consumer_groups.len()
            ));
        }
        for (i, group) in self.consumer_groups.iter().enumerate() {
            // Group names follow the topic-name rules: printable, no surprises
            // in logs or in the partner's tooling.
            if let Err(e) = crate::names::TopicName::parse(group.as_str()) {
                problems.push(format!("consumer_groups[{i}]: {e}"));
            } else if self.consumer_groups[..i].contains(group) {
                problems.push(format!("consumer_groups[{i}]: {group:?} is named twice"));
            }
        }
        if let Some(rate) = self.max_records_per_second {
            if rate == 0 || rate > MAX_RATE {
                problems.push(format!(
                    "max_records_per_second {rate} must be between 1 and {MAX_RATE}"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TermsError(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "country": {"type": "string"},
            "customer": {"type": "object", "properties": {"email": {"type": "string"}, "a/b": {}}},
            "free": {"type": "object"}
        }})
    }

    #[test]
    fn good_terms_pass() {
        let terms = ContractTerms {
            drop_fields: vec!["/customer/a~1b".into()],
            mask_fields: vec!["/customer/email".into()],
            hash_fields: vec!["/id".into(), "/free/anything/below".into()],
            row_filter: vec![
                RowCondition {
                    field: "/country".into(),
                    op: FilterOp::In,
                    value: json!(["NL", "BE"]),
                },
                RowCondition {
                    field: "/id".into(),
                    op: FilterOp::Gt,
                    value: json!(10),
                },
            ],
            end_time_ms: Some(2_000),
            max_records_per_second: Some(500),
            consumer_groups: vec!["analytics".into(), "billing.v2".into()],
        };
        terms.validate(&schema(), 1_000).unwrap();
        // A schema that declares nothing constrains nothing.
        terms.validate(&json!({}), 1_000).unwrap();
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let terms = ContractTerms {
            drop_fields: vec!["customer".into(), "/nope".into()],
            mask_fields: vec!["/customer/email".into(), "/bad~2".into()],
            hash_fields: vec!["/customer/email".into(), "/a//b".into()],
            row_filter: vec![
                RowCondition {
                    field: "/country".into(),
                    op: FilterOp::In,
                    value: json!("NL"),
                },
                RowCondition {
                    field: "/id".into(),
                    op: FilterOp::Lt,
                    value: json!(true),
                },
            ],
            end_time_ms: Some(5),
            max_records_per_second: Some(0),
            consumer_groups: vec!["ok".into(), "has space".into(), "ok".into()],
        };
        let TermsError(problems) = terms.validate(&schema(), 1_000).unwrap_err();
        let expected = [
            "drop_fields: \"customer\" is not a JSON pointer",
            "drop_fields: \"/nope\" is not a field of the stream's schema",
            "mask_fields: \"/bad~2\" has a '~' not followed by 0 or 1",
            "hash_fields: \"/customer/email\" is already in mask_fields",
            "hash_fields: \"/a//b\" has an empty segment",
            "row_filter[0]: 'in' needs a non-empty array",
            "row_filter[1]: 'lt' compares numbers or strings",
            "end_time 5 ms is not in the future",
            "max_records_per_second 0",
            "consumer_groups[1]:",
            "consumer_groups[2]: \"ok\" is named twice",
        ];
        for needle in expected {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "missing {needle:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }
}
