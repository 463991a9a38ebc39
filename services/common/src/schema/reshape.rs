//! The schema of values after a contract's terms reshaped them: what the
//! partner's deserializer needs to read a masked copy. Dropped fields are
//! gone; masked and hashed fields hold strings (`terms::MASK`, or
//! `hmac-sha256:<hex>`). A row filter changes no shape.
//!
//! Fields are named by JSON pointers into the value, as the terms name
//! them; in an Avro schema a pointer goes through records (and a union's
//! one record branch). A field the schema does not have is left alone, as
//! the terms leave a value without it alone.

use serde_json::{json, Map, Value};

use super::{SchemaFormat, Source};
use crate::contract::ContractTerms;
use crate::json::pointer_segments;

#[derive(Clone, Copy)]
enum Change {
    Drop,
    /// Masked or hashed: a string from now on.
    Text,
}

/// Whether `terms` change the shape of values (a filter alone does not).
pub fn reshapes(terms: &ContractTerms) -> bool {
    !(terms.drop_fields.is_empty() && terms.mask_fields.is_empty() && terms.hash_fields.is_empty())
}

/// `schema` (of `format`) as values come out of `terms`.
///
/// A schema that refers to others keeps its references: terms reshape its
/// own fields, and a referenced type is kept whole or dropped whole.
pub fn reshaped_schema(
    format: SchemaFormat,
    source: Source<'_>,
    terms: &ContractTerms,
) -> Result<Value, String> {
    let mut out = source.schema.clone();
    let changes = terms
        .hash_fields
        .iter()
        .chain(&terms.mask_fields)
        .map(|f| (f, Change::Text))
        .chain(terms.drop_fields.iter().map(|f| (f, Change::Drop)));
    for (field, change) in changes {
        let path = pointer_segments(field).map_err(|why| format!("{field:?} {why}"))?;
        let done = match format {
            SchemaFormat::Avro => avro(&mut out, &path, change),
            SchemaFormat::JsonSchema => json_schema(&mut out, &path, change),
            SchemaFormat::Protobuf => protobuf(&mut out, source.dependencies, &path, change),
        };
        done.map_err(|why| format!("{field}: {why}"))?;
    }
    Ok(out)
}

/// The record an Avro schema node is: itself, or a union's one record.
fn avro_record(node: &mut Value) -> Result<Option<&mut Map<String, Value>>, String> {
    let is_record = |v: &Value| v.get("type") == Some(&json!("record"));
    let elsewhere = |name: &str| {
        format!("goes through {name:?}, a type defined elsewhere in the schema; define it where the field is")
    };
    if is_record(node) {
        return Ok(node.as_object_mut());
    }
    match node {
        Value::Object(object) => match object.get_mut("type") {
            // {"type": {...}} or {"type": [...]}: the schema nested as the type.
            Some(inner @ (Value::Object(_) | Value::Array(_))) => avro_record(inner),
            _ => Ok(None),
        },
        Value::Array(branches) => {
            let records: Vec<usize> = (0..branches.len())
                .filter(|i| is_record(&branches[*i]))
                .collect();
            match records.as_slice() {
                [one] => avro_record(&mut branches[*one]),
                [] => match branches
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|name| !super::avro::is_primitive(name))
                {
                    Some(name) => Err(elsewhere(name)),
                    None => Ok(None),
                },
                _ => Err("goes through a union of several records".into()),
            }
        }
        Value::String(name) if !super::avro::is_primitive(name) => Err(elsewhere(name)),
        _ => Ok(None),
    }
}

fn avro(schema: &mut Value, path: &[String], change: Change) -> Result<(), String> {
    let Some((name, rest)) = path.split_first() else {
        return Ok(());
    };
    let Some(record) = avro_record(schema)? else {
        return Ok(());
    };
    let Some(fields) = record.get_mut("fields").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    let Some(at) = fields
        .iter()
        .position(|f| f.get("name").and_then(Value::as_str) == Some(name))
    else {
        return Ok(());
    };
    if !rest.is_empty() {
        return match fields[at].get_mut("type") {
            Some(inner) => avro(inner, rest, change),
            None => Ok(()),
        };
    }
    match change {
        Change::Drop => {
            fields.remove(at);
        }
        Change::Text => {
            if let Some(field) = fields[at].as_object_mut() {
                field.insert("type".into(), json!("string"));
                field.remove("default");
            }
        }
    }
    Ok(())
}

/// A Protobuf schema (its text) with one field of its first message
/// dropped or made a string.
fn protobuf(
    schema: &mut Value,
    dependencies: &[super::Dependency],
    path: &[String],
    change: Change,
) -> Result<(), String> {
    let parsed = super::ProtoSchema::parse_with(Source {
        schema,
        dependencies,
    })
    .map_err(|e| e.join("; "))?;
    let reshaped = parsed.reshaped(path, matches!(change, Change::Text))?;
    *schema = Value::String(reshaped.text());
    Ok(())
}

fn json_schema(schema: &mut Value, path: &[String], change: Change) -> Result<(), String> {
    let Some((name, rest)) = path.split_first() else {
        return Ok(());
    };
    let Some(object) = schema.as_object_mut() else {
        return Ok(());
    };
    if rest.is_empty() {
        if let Change::Drop = change {
            if let Some(required) = object.get_mut("required").and_then(Value::as_array_mut) {
                required.retain(|r| r.as_str() != Some(name));
            }
        }
    }
    let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if !rest.is_empty() {
        return match properties.get_mut(name) {
            Some(inner) => json_schema(inner, rest, change),
            None => Ok(()),
        };
    }
    match change {
        Change::Drop => {
            properties.remove(name);
        }
        Change::Text => {
            if properties.contains_key(name) {
                properties.insert(name.clone(), json!({"type": "string"}));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(drop: &[&str], mask: &[&str], hash: &[&str]) -> ContractTerms {
        let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        ContractTerms {
            drop_fields: strings(drop),
            mask_fields: strings(mask),
            hash_fields: strings(hash),
            ..ContractTerms::default()
        }
    }

    #[test]
    fn avro_fields_are_dropped_or_become_strings_nested_or_not() {
        let schema = json!({"type": "record", "name": "Customer", "fields": [
            {"name": "id", "type": "long"},
            {"name": "email", "type": ["null", "string"], "default": null},
            {"name": "age", "type": "int"},
            {"name": "address", "type": ["null", {"type": "record", "name": "Address", "fields": [
                {"name": "street", "type": "string"}, {"name": "city", "type": "string"}
            ]}]}
        ]});
        let out = reshaped_schema(
            SchemaFormat::Avro,
            Source::alone(&schema),
            &terms(&["/address/street"], &["/email"], &["/age"]),
        )
        .unwrap();
        assert_eq!(out["fields"][1], json!({"name": "email", "type": "string"}));
        assert_eq!(out["fields"][2], json!({"name": "age", "type": "string"}));
        assert_eq!(
            out["fields"][3]["type"][1]["fields"],
            json!([{"name": "city", "type": "string"}])
        );
        crate::schema::AvroSchema::parse(&out).expect("still an Avro schema");
        // A field the schema does not have is left alone.
        assert_eq!(
            reshaped_schema(
                SchemaFormat::Avro,
                Source::alone(&schema),
                &terms(&["/nope"], &[], &[])
            )
            .unwrap(),
            schema
        );
        let referenced = json!({"type": "record", "name": "R", "fields": [
            {"name": "a", "type": {"type": "record", "name": "A", "fields": [{"name": "x", "type": "int"}]}},
            {"name": "b", "type": "A"}
        ]});
        assert!(reshaped_schema(
            SchemaFormat::Avro,
            Source::alone(&referenced),
            &terms(&["/b/x"], &[], &[])
        )
        .unwrap_err()
        .contains("defined elsewhere"));
    }

    #[test]
    fn json_schema_properties_are_dropped_or_become_strings() {
        let schema = json!({"type": "object", "required": ["id", "email"], "properties": {
            "id": {"type": "integer"}, "email": {"type": "string", "format": "email"},
            "card": {"type": "object", "properties": {"number": {"type": "string"}, "cvv": {"type": "integer"}}}
        }});
        let out = reshaped_schema(
            SchemaFormat::JsonSchema,
            Source::alone(&schema),
            &terms(&["/email", "/card/cvv"], &["/id"], &[]),
        )
        .unwrap();
        assert_eq!(out["required"], json!(["id"]));
        assert_eq!(out["properties"]["id"], json!({"type": "string"}));
        assert!(out["properties"].get("email").is_none());
        assert_eq!(
            out["properties"]["card"]["properties"],
            json!({"number": {"type": "string"}})
        );
    }
}
