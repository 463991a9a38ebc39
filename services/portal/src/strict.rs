//! Reading request JSON as the OpenAPI document describes it.
//!
//! serde's derived structs also accept a JSON array of their fields in
//! order (`[null, null]` for `{"key": null, "value": null}`), and integer
//! fields refuse a whole number written `1.0`, which JSON Schema's
//! `integer` allows. [`from_value`] reads a parsed document through a
//! deserializer that does neither: a struct must be an object, at every
//! depth, and a number with no fractional part is an integer.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{
    DeserializeOwned, Deserializer, Error as _, IntoDeserializer, Unexpected, Visitor,
};
use serde_json::{Number, Value};

/// `T` from `value`, strictly.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    T::deserialize(Strict(value))
}

struct Strict(Value);

impl<'de> IntoDeserializer<'de, serde_json::Error> for Strict {
    type Deserializer = Strict;

    fn into_deserializer(self) -> Strict {
        self
    }
}

/// `number` as an integer when it is one: an integer already, or a whole
/// number in `f64` (exactly, below 2^53).
pub fn whole(number: &Number) -> Option<Number> {
    if !number.is_f64() {
        return Some(number.clone());
    }
    let f = number.as_f64()?;
    if f.fract() == 0.0 && f.abs() < 2f64.powi(53) {
        // Exact below 2^53; the casts cannot truncate.
        return Some(if f < 0.0 {
            Number::from(f as i64)
        } else {
            Number::from(f as u64)
        });
    }
    None
}

impl<'de> Deserializer<'de> for Strict {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => n.deserialize_any(visitor),
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(Strict));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(map) => {
                let mut entries =
                    MapDeserializer::new(map.into_iter().map(|(k, v)| (k, Strict(v))));
                let value = visitor.visit_map(&mut entries)?;
                entries.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match &self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            Value::Array(_) => Err(Self::Error::invalid_type(Unexpected::Seq, &"a JSON object")),
            other => Err(Self::Error::invalid_type(
                unexpected(other),
                &"a JSON object",
            )),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            other => other.deserialize_enum(name, variants, visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool f32 f64 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map identifier ignored_any
    }

    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.integer(v)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.integer(v)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.integer(v)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.integer(v)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.integer(v)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.integer(v)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.integer(v)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.integer(v)
    }
}

impl Strict {
    /// An integer field: a whole number written with a fraction (`1.0`)
    /// counts, as in JSON Schema.
    fn integer<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        match &self.0 {
            Value::Number(n) => whole(n)
                .unwrap_or_else(|| n.clone())
                .deserialize_any(visitor),
            _ => self.deserialize_any(visitor),
        }
    }
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("a number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Record {
        #[serde(default)]
        key: Option<Value>,
        #[serde(default)]
        partition: Option<i32>,
        #[serde(default)]
        kind: Option<Kind>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "UPPERCASE")]
    enum Kind {
        Json,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        records: Vec<Record>,
        #[serde(default)]
        max: Option<u64>,
    }

    #[test]
    fn objects_read_as_serde_json_reads_them() {
        let text = json!({"records": [{"key": {"a": [1, "x", null]}, "partition": 2, "kind": "JSON"}], "max": 7});
        let strict: Body = from_value(text.clone()).unwrap();
        let plain: Body = serde_json::from_value(text).unwrap();
        assert_eq!(strict, plain);
    }

    #[test]
    fn a_struct_is_never_an_array() {
        for text in [
            json!({"records": [[null, null, null]]}),
            json!([[]]),
            json!({"records": ["x"]}),
        ] {
            let error = from_value::<Body>(text.clone()).unwrap_err().to_string();
            assert!(error.contains("expected a JSON object"), "{text}: {error}");
        }
    }

    #[test]
    fn whole_numbers_are_integers_however_written() {
        let body: Body = from_value(json!({"records": [{"partition": 1.0}], "max": 3e2})).unwrap();
        assert_eq!(body.records[0].partition, Some(1));
        assert_eq!(body.max, Some(300));
        // Read exactly: without serde_json's float_roundtrip this lands on
        // a neighbour with a fraction.
        let exact: Body = from_value(
            serde_json::from_str(r#"{"records": [], "max": 3853575775725502.0}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(exact.max, Some(3_853_575_775_725_502));
        for bad in [json!(1.5), json!(-1.0), json!(1e30)] {
            assert!(
                from_value::<Body>(json!({"records": [], "max": bad})).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_still_refused() {
        assert!(from_value::<Body>(json!({"records": [], "extra": 1})).is_err());
        assert!(from_value::<Body>(json!({"records": [{"partition": "1"}]})).is_err());
        assert!(from_value::<Body>(json!({"records": [{"kind": "XML"}]})).is_err());
    }
}
