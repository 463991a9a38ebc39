//! JSON Schema: a structural check, and a conservative compatibility check.
//!
//! `reader_accepts(reader, writer)` asks whether every value valid under
//! `writer` is valid under `reader`. It understands types (an integer is a
//! number), `required`, `properties`, `additionalProperties`, `items`,
//! `enum`/`const` and the numeric, length and count bounds. Data is assumed
//! to carry only the properties its schema declares, so adding an optional
//! property is compatible both ways. Keywords it cannot reason about
//! (`anyOf`, `$ref`, ...) must stay unchanged, or the change is refused.

use serde_json::{Map, Value};

const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];
/// Keywords whose changes this checker cannot judge.
const OPAQUE: [&str; 10] = [
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "$ref",
    "if",
    "then",
    "else",
    "patternProperties",
    "dependentSchemas",
];
const LOWER_BOUNDS: [&str; 5] = [
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];
const UPPER_BOUNDS: [&str; 5] = [
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];

/// `schema` with each `{"$ref": name}` (or `name#/pointer`) that names one
/// of `dependencies` replaced by what it names, so that the compatibility
/// check sees a referenced schema's changes. A `$ref` with other keywords
/// beside it, or inside a dependency to its own parts, stays as it is
/// (opaque to the check).
pub fn inlined(schema: &Value, dependencies: &[super::Dependency]) -> Value {
    fn walk(value: &Value, dependencies: &[super::Dependency], depth: usize) -> Value {
        match value {
            Value::Object(object) => {
                let target = object
                    .get("$ref")
                    .and_then(Value::as_str)
                    .filter(|_| object.len() == 1 && depth < 32)
                    .and_then(|reference| {
                        let (name, pointer) = reference.split_once('#').unwrap_or((reference, ""));
                        let found = dependencies.iter().find(|d| d.reference.name == name)?;
                        found.schema.pointer(pointer)
                    });
                match target {
                    Some(target) => walk(target, dependencies, depth + 1),
                    None => Value::Object(
                        object
                            .iter()
                            .map(|(k, v)| (k.clone(), walk(v, dependencies, depth)))
                            .collect(),
                    ),
                }
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| walk(v, dependencies, depth)).collect())
            }
            other => other.clone(),
        }
    }
    if dependencies.is_empty() {
        return schema.clone();
    }
    walk(schema, dependencies, 0)
}

/// Escapes a property name for a JSON pointer.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// Every structural problem, each with its JSON pointer.
pub fn check(schema: &Value) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if !schema.is_object() && !schema.is_boolean() {
        problems.push("/: a JSON Schema must be an object or a boolean".to_string());
    } else {
        check_at(schema, "", &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn check_at(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        if !schema.is_boolean() {
            problems.push(format!("{path}: a schema must be an object or a boolean"));
        }
        return;
    };
    match object.get("type") {
        None => {}
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => {}
        Some(Value::Array(ts))
            if !ts.is_empty()
                && ts
                    .iter()
                    .all(|t| t.as_str().is_some_and(|t| TYPES.contains(&t))) => {}
        Some(other) => problems.push(format!("{path}/type: {other} is not a JSON Schema type")),
    }
    if let Some(properties) = object.get("properties") {
        match properties.as_object() {
            Some(properties) => {
                for (name, child) in properties {
                    check_at(
                        child,
                        &format!("{path}/properties/{}", escape(name)),
                        problems,
                    );
                }
            }
            None => problems.push(format!("{path}/properties: must be an object")),
        }
    }
    if let Some(required) = object.get("required") {
        if !required
            .as_array()
            .is_some_and(|r| r.iter().all(Value::is_string))
        {
            problems.push(format!(
                "{path}/required: must be an array of property names"
            ));
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = object.get(key) {
            check_at(child, &format!("{path}/{key}"), problems);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = object.get(key) {
            match list.as_array() {
                Some(list) if !list.is_empty() => {
                    for (i, child) in list.iter().enumerate() {
                        check_at(child, &format!("{path}/{key}/{i}"), problems);
                    }
                }
                _ => problems.push(format!(
                    "{path}/{key}: must be a non-empty array of schemas"
                )),
            }
        }
    }
    if let Some(values) = object.get("enum") {
        if values.as_array().is_none_or(|v| v.is_empty()) {
            problems.push(format!("{path}/enum: must be a non-empty array"));
        }
    }
    for key in LOWER_BOUNDS.iter().chain(UPPER_BOUNDS.iter()) {
        if let Some(bound) = object.get(*key) {
            if !bound.is_number() {
                problems.push(format!("{path}/{key}: must be a number"));
            }
        }
    }
}

/// The schema's allowed types; `None` for any.
fn types(schema: &Map<String, Value>) -> Option<Vec<String>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

/// The values the schema allows, when it lists them.
fn allowed_values(schema: &Map<String, Value>) -> Option<Vec<Value>> {
    if let Some(value) = schema.get("const") {
        return Some(vec![value.clone()]);
    }
    schema.get("enum")?.as_array().cloned()
}

fn required(schema: &Map<String, Value>) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn properties(schema: &Map<String, Value>) -> Option<&Map<String, Value>> {
    schema.get("properties")?.as_object()
}

/// Why some value valid under `writer` may be invalid under `reader`.
pub fn reader_accepts(reader: &Value, writer: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    accepts_at(reader, writer, "", &mut problems);
    problems
}

fn accepts_at(reader: &Value, writer: &Value, path: &str, problems: &mut Vec<String>) {
    let at = if path.is_empty() { "/" } else { path };
    let empty = Map::new();
    let r = match reader {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            if writer != &Value::Bool(false) {
                problems.push(format!("{at}: the new schema accepts nothing here"));
            }
            return;
        }
        Value::Object(r) => r,
        _ => return,
    };
    let w = match writer {
        Value::Bool(false) => return,
        Value::Object(w) => w,
        _ => &empty,
    };

    for key in OPAQUE {
        if r.get(key) != w.get(key) {
            problems.push(format!(
                "{at}: '{key}' changed, and changes to it cannot be checked; keep it as it was or use compatibility NONE"
            ));
        }
    }

    if let Some(reader_types) = types(r) {
        match types(w) {
            None => problems.push(format!(
                "{at}: type is now restricted to {}; any type was allowed",
                reader_types.join(", ")
            )),
            Some(writer_types) => {
                let missing: Vec<_> = writer_types
                    .iter()
                    .filter(|t| {
                        !(reader_types.contains(t)
                            || (t.as_str() == "integer"
                                && reader_types.iter().any(|r| r == "number")))
                    })
                    .collect();
                if !missing.is_empty() {
                    problems.push(format!(
                        "{at}: type {} is no longer allowed (now {})",
                        missing
                            .iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        reader_types.join(", ")
                    ));
                }
            }
        }
    }

    if let Some(reader_values) = allowed_values(r) {
        match allowed_values(w) {
            None => problems.push(format!(
                "{at}: values are now restricted to a list; any value was allowed"
            )),
            Some(writer_values) => {
                let dropped: Vec<String> = writer_values
                    .iter()
                    .filter(|v| !reader_values.contains(v))
                    .map(Value::to_string)
                    .collect();
                if !dropped.is_empty() {
                    problems.push(format!(
                        "{at}: values {} are no longer allowed",
                        dropped.join(", ")
                    ));
                }
            }
        }
    }

    for key in LOWER_BOUNDS {
        if let Some(bound) = r.get(key).and_then(Value::as_f64) {
            match w.get(key).and_then(Value::as_f64) {
                Some(old) if old >= bound => {}
                Some(old) => problems.push(format!("{at}: {key} rose from {old} to {bound}")),
                None => problems.push(format!("{at}: {key} {bound} is new")),
            }
        }
    }
    for key in UPPER_BOUNDS {
        if let Some(bound) = r.get(key).and_then(Value::as_f64) {
            match w.get(key).and_then(Value::as_f64) {
                Some(old) if old <= bound => {}
                Some(old) => problems.push(format!("{at}: {key} fell from {old} to {bound}")),
                None => problems.push(format!("{at}: {key} {bound} is new")),
            }
        }
    }
    for key in ["pattern", "format"] {
        if let Some(value) = r.get(key) {
            if w.get(key) != Some(value) {
                problems.push(format!("{at}: {key} {value} is new or changed"));
            }
        }
    }

    // Objects.
    let writer_required = required(w);
    for name in required(r) {
        if !writer_required.contains(&name) {
            problems.push(format!(
                "{path}/properties/{}: '{name}' is now required but was optional or absent",
                escape(name)
            ));
        }
    }
    let writer_properties = properties(w);
    if let Some(reader_properties) = properties(r) {
        for (name, reader_child) in reader_properties {
            let child_path = format!("{path}/properties/{}", escape(name));
            match writer_properties.and_then(|p| p.get(name)) {
                Some(writer_child) => accepts_at(reader_child, writer_child, &child_path, problems),
                // Undeclared before: absent from old data, unless the old
                // schema gave undeclared properties a schema of their own.
                None => {
                    if let Some(extra @ Value::Object(_)) = w.get("additionalProperties") {
                        accepts_at(reader_child, extra, &child_path, problems);
                    }
                }
            }
        }
    }
    if let Some(writer_properties) = writer_properties {
        let reader_properties = properties(r);
        for (name, writer_child) in writer_properties {
            if reader_properties.is_some_and(|p| p.contains_key(name)) {
                continue;
            }
            match r.get("additionalProperties") {
                Some(Value::Bool(false)) => problems.push(format!(
                    "{path}/properties/{}: '{name}' is no longer allowed (additionalProperties is false)",
                    escape(name)
                )),
                Some(extra @ Value::Object(_)) => {
                    accepts_at(extra, writer_child, &format!("{path}/properties/{}", escape(name)), problems)
                }
                _ => {}
            }
        }
    }

    // Arrays.
    if let Some(reader_items) = r.get("items") {
        let writer_items = w.get("items").cloned().unwrap_or(Value::Bool(true));
        accepts_at(
            reader_items,
            &writer_items,
            &format!("{path}/items"),
            problems,
        );
    }
}
