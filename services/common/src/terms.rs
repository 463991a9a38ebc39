//! Applying a contract's terms to each record: pure, no I/O.
//!
//! On JSON values: fields are dropped, masked (replaced by `MASK`) or
//! hashed (replaced by a keyed HMAC-SHA256 of the field's canonical JSON,
//! so equal values still match without revealing them); a row filter keeps
//! only records for which every condition holds. A value that is not JSON,
//! or not an object, cannot be reshaped safely: it goes to the dead-letter
//! topic with the reason, never to the partner, never silently dropped.
//! Records without a value (tombstones) carry no data and pass unchanged.

use crate::contract::{ContractTerms, FilterOp};
use crate::json::{canonical_json, pointer_segments};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// What a masked field becomes.
pub const MASK: &str = "****";

/// What happens to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Deliver with this value.
    Deliver(Option<Vec<u8>>),
    /// The row filter leaves it out.
    Skip,
    /// Cannot be reshaped: to the dead-letter topic, with the reason.
    DeadLetter(String),
}

#[derive(Debug, Clone)]
struct Condition {
    field: Vec<String>,
    op: FilterOp,
    value: Value,
}

/// A contract's terms, parsed once.
#[derive(Clone)]
pub struct Reshaper {
    drop: Vec<Vec<String>>,
    mask: Vec<Vec<String>>,
    hash: Vec<Vec<String>>,
    filter: Vec<Condition>,
    hash_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Reshaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash key never prints.
        f.debug_struct("Reshaper")
            .field("drop", &self.drop)
            .field("mask", &self.mask)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

fn parse_fields(list: &str, fields: &[String]) -> Result<Vec<Vec<String>>, String> {
    fields
        .iter()
        .map(|f| pointer_segments(f).map_err(|why| format!("{list}: {f:?} {why}")))
        .collect()
}

/// The value a pointer names, if present.
fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |node, segment| node.as_object()?.get(segment))
}

/// The object holding the field a pointer names, and the field's name.
fn parent_mut<'a>(
    value: &'a mut Value,
    path: &'a [String],
) -> Option<(&'a mut serde_json::Map<String, Value>, &'a str)> {
    let (last, parents) = path.split_last()?;
    let mut node = value;
    for segment in parents {
        node = node.as_object_mut()?.get_mut(segment)?;
    }
    Some((node.as_object_mut()?, last.as_str()))
}

fn as_number(value: &Value) -> Option<f64> {
    value.as_f64()
}

fn equal(a: &Value, b: &Value) -> bool {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn holds(condition: &Condition, record: &Value) -> bool {
    use std::cmp::Ordering;
    let Some(actual) = lookup(record, &condition.field) else {
        // A missing field only satisfies "not equal".
        return condition.op == FilterOp::Ne;
    };
    let order = || match (as_number(actual), as_number(&condition.value)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (actual.as_str(), condition.value.as_str()) {
            (Some(x), Some(y)) => Some(x.cmp(y)),
            _ => None,
        },
    };
    match condition.op {
        FilterOp::Eq => equal(actual, &condition.value),
        FilterOp::Ne => !equal(actual, &condition.value),
        FilterOp::Lt => order() == Some(Ordering::Less),
        FilterOp::Lte => matches!(order(), Some(Ordering::Less | Ordering::Equal)),
        FilterOp::Gt => order() == Some(Ordering::Greater),
        FilterOp::Gte => matches!(order(), Some(Ordering::Greater | Ordering::Equal)),
        FilterOp::In => condition
            .value
            .as_array()
            .is_some_and(|values| values.iter().any(|v| equal(actual, v))),
    }
}

impl Reshaper {
    /// `None` when the terms leave records as they are. Hashing needs the
    /// link's hash key; without one such a contract cannot be served.
    pub fn new(terms: &ContractTerms, hash_key: Option<&[u8]>) -> Result<Option<Reshaper>, String> {
        if terms.drop_fields.is_empty()
            && terms.mask_fields.is_empty()
            && terms.hash_fields.is_empty()
            && terms.row_filter.is_empty()
        {
            return Ok(None);
        }
        if !terms.hash_fields.is_empty() && hash_key.is_none() {
            return Err(
                "the contract hashes fields, and this link has no hash_key configured".into(),
            );
        }
        let filter = terms
            .row_filter
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Ok(Condition {
                    field: pointer_segments(&c.field)
                        .map_err(|why| format!("row_filter[{i}]: {why}"))?,
                    op: c.op,
                    value: c.value.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Some(Reshaper {
            drop: parse_fields("drop_fields", &terms.drop_fields)?,
            mask: parse_fields("mask_fields", &terms.mask_fields)?,
            hash: parse_fields("hash_fields", &terms.hash_fields)?,
            filter,
            hash_key: hash_key.map(<[u8]>::to_vec),
        }))
    }

    fn hash(&self, value: &Value) -> String {
        let key = self.hash_key.as_deref().unwrap_or_default();
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(canonical_json(value).as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// What the partner receives of one record value.
    pub fn apply(&self, payload: Option<&[u8]>) -> Outcome {
        let Some(payload) = payload else {
            return Outcome::Deliver(None);
        };
        let value: Value = match serde_json::from_slice(payload) {
            Ok(value) => value,
            Err(e) => return Outcome::DeadLetter(format!("value is not valid JSON: {e}")),
        };
        match self.apply_value(value) {
            Ok(Some(value)) => match serde_json::to_vec(&value) {
                Ok(bytes) => Outcome::Deliver(Some(bytes)),
                Err(e) => Outcome::DeadLetter(format!("cannot encode the reshaped value: {e}")),
            },
            Ok(None) => Outcome::Skip,
            Err(reason) => Outcome::DeadLetter(reason),
        }
    }

    /// What the partner receives of a value already read (JSON, or Avro
    /// decoded): the reshaped value, `None` when the filter leaves it out,
    /// or why it cannot be reshaped.
    pub fn apply_value(&self, mut value: Value) -> Result<Option<Value>, String> {
        if !value.is_object() {
            return Err("value is not a JSON object, so its fields cannot be reshaped".into());
        }
        // Filter on the record as produced, before anything is hidden.
        if !self.filter.iter().all(|c| holds(c, &value)) {
            return Ok(None);
        }
        for path in &self.hash {
            let hashed = lookup(&value, path).map(|v| self.hash(v));
            if let (Some(hashed), Some((parent, field))) = (hashed, parent_mut(&mut value, path)) {
                parent.insert(field.to_string(), Value::String(hashed));
            }
        }
        for path in &self.mask {
            if let Some((parent, field)) = parent_mut(&mut value, path) {
                if let Some(slot) = parent.get_mut(field) {
                    *slot = Value::String(MASK.into());
                }
            }
        }
        for path in &self.drop {
            if let Some((parent, field)) = parent_mut(&mut value, path) {
                parent.remove(field);
            }
        }
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::contract::RowCondition;

    fn terms(
        drop: &[&str],
        mask: &[&str],
        hash: &[&str],
        filter: &[(&str, FilterOp, Value)],
    ) -> ContractTerms {
        let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        ContractTerms {
            drop_fields: strings(drop),
            mask_fields: strings(mask),
            hash_fields: strings(hash),
            row_filter: filter
                .iter()
                .map(|(f, op, v)| RowCondition {
                    field: f.to_string(),
                    op: *op,
                    value: v.clone(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn apply(reshaper: &Reshaper, value: Value) -> Outcome {
        reshaper.apply(Some(&serde_json::to_vec(&value).unwrap()))
    }

    fn delivered(outcome: Outcome) -> Value {
        match outcome {
            Outcome::Deliver(Some(bytes)) => serde_json::from_slice(&bytes).unwrap(),
            other => panic!("not delivered: {other:?}"),
        }
    }

    #[test]
    fn fields_are_dropped_masked_and_hashed() {
        let r = Reshaper::new(
            &terms(&["/total"], &["/customer/name"], &["/customer/email"], &[]),
            Some(b"k"),
        )
        .unwrap()
        .unwrap();
        let out = delivered(apply(
            &r,
            json!({"id": 1, "total": 9.5, "customer": {"name": "Ann", "email": "ann@x.example"}}),
        ));
        assert_eq!(out["id"], 1);
        assert!(out.get("total").is_none());
        assert_eq!(out["customer"]["name"], MASK);
        let hashed = out["customer"]["email"].as_str().unwrap();
        assert!(
            hashed.starts_with("hmac-sha256:") && !hashed.contains("ann"),
            "{hashed}"
        );
        // Equal values hash equally; another key hashes differently.
        let again = delivered(apply(&r, json!({"customer": {"email": "ann@x.example"}})));
        assert_eq!(again["customer"]["email"], hashed);
        let other = Reshaper::new(&terms(&[], &[], &["/customer/email"], &[]), Some(b"other"))
            .unwrap()
            .unwrap();
        let other = delivered(apply(
            &other,
            json!({"customer": {"email": "ann@x.example"}}),
        ));
        assert_ne!(other["customer"]["email"], hashed);
    }

    #[test]
    fn the_row_filter_sees_the_record_before_it_is_reshaped() {
        let r = Reshaper::new(
            &terms(
                &["/country"],
                &[],
                &[],
                &[
                    ("/country", FilterOp::In, json!(["NL", "BE"])),
                    ("/total", FilterOp::Gte, json!(10)),
                ],
            ),
            None,
        )
        .unwrap()
        .unwrap();
        let kept = delivered(apply(&r, json!({"country": "NL", "total": 10})));
        assert_eq!(kept, json!({"total": 10}));
        assert_eq!(
            apply(&r, json!({"country": "DE", "total": 50})),
            Outcome::Skip
        );
        assert_eq!(
            apply(&r, json!({"country": "BE", "total": 9.99})),
            Outcome::Skip
        );
        assert_eq!(
            apply(&r, json!({"total": 50})),
            Outcome::Skip,
            "missing field"
        );
        let ne = Reshaper::new(
            &terms(&[], &[], &[], &[("/x", FilterOp::Ne, json!(1))]),
            None,
        )
        .unwrap()
        .unwrap();
        assert!(
            matches!(apply(&ne, json!({})), Outcome::Deliver(_)),
            "a missing field is not equal"
        );
        let lt = Reshaper::new(
            &terms(&[], &[], &[], &[("/d", FilterOp::Lt, json!("2026-06"))]),
            None,
        )
        .unwrap()
        .unwrap();
        assert!(
            matches!(apply(&lt, json!({"d": "2026-01-15"})), Outcome::Deliver(_)),
            "strings compare"
        );
        assert_eq!(
            apply(&lt, json!({"d": 5})),
            Outcome::Skip,
            "a number is not less than a string"
        );
    }

    #[test]
    fn what_cannot_be_reshaped_goes_to_the_dead_letter_topic() {
        let r = Reshaper::new(&terms(&[], &["/a"], &[], &[]), None)
            .unwrap()
            .unwrap();
        assert!(
            matches!(r.apply(Some(b"not json")), Outcome::DeadLetter(reason) if reason.contains("not valid JSON"))
        );
        assert!(
            matches!(r.apply(Some(b"[1, 2]")), Outcome::DeadLetter(reason) if reason.contains("not a JSON object"))
        );
        assert_eq!(r.apply(None), Outcome::Deliver(None), "tombstones pass");
    }

    #[test]
    fn terms_that_change_nothing_need_no_reshaper_and_hashing_needs_a_key() {
        assert!(Reshaper::new(
            &ContractTerms {
                max_records_per_second: Some(5),
                ..Default::default()
            },
            None
        )
        .unwrap()
        .is_none());
        let err = Reshaper::new(&terms(&[], &[], &["/a"], &[]), None).unwrap_err();
        assert!(err.contains("hash_key"), "{err}");
        assert!(Reshaper::new(&terms(&["nope"], &[], &[], &[]), None).is_err());
        assert!(!format!(
            "{:?}",
            Reshaper::new(&terms(&[], &[], &["/a"], &[]), Some(b"secret"))
                .unwrap()
                .unwrap()
        )
        .contains("secret"));
    }

    /// Flat objects over a few field names, with string, number or nested values.
    fn record() -> impl Strategy<Value = serde_json::Map<String, Value>> {
        let leaf = prop_oneof![
            "[a-z@.]{0,12}".prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ];
        proptest::collection::btree_map("[a-e]", leaf, 0..6).prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn masking_hides_and_leaves_the_rest_alone(
            record in record(),
            drop in proptest::sample::subsequence(vec!["a", "b"], 0..=2),
            mask in proptest::sample::subsequence(vec!["c"], 0..=1),
            hash in proptest::sample::subsequence(vec!["d"], 0..=1),
        ) {
            let pointers = |l: &[&str]| l.iter().map(|f| format!("/{f}")).collect::<Vec<_>>();
            let t = ContractTerms {
                drop_fields: pointers(&drop),
                mask_fields: pointers(&mask),
                hash_fields: pointers(&hash),
                ..Default::default()
            };
            let Some(r) = Reshaper::new(&t, Some(b"key")).unwrap() else {
                return Ok(());
            };
            let original = Value::Object(record.clone());
            let out = delivered(apply(&r, original));
            for (field, value) in &record {
                let now = out.get(field);
                if drop.contains(&field.as_str()) {
                    prop_assert!(now.is_none());
                } else if mask.contains(&field.as_str()) {
                    prop_assert_eq!(now, Some(&Value::from(MASK)));
                } else if hash.contains(&field.as_str()) {
                    let hashed = now.and_then(Value::as_str).unwrap();
                    prop_assert!(hashed.starts_with("hmac-sha256:"));
                    if let Some(text) = value.as_str().filter(|t| t.len() > 3) {
                        prop_assert!(!hashed.contains(text));
                    }
                } else {
                    prop_assert_eq!(now, Some(value));
                }
            }
            // Nothing appears that was not there.
            prop_assert!(out.as_object().unwrap().keys().all(|k| record.contains_key(k)));
        }
    }
}
