//! JSON helpers shared by the services: a canonical form for hashing, and
//! JSON pointers (RFC 6901) into record values.

use serde_json::Value;

const MAX_POINTER: usize = 256;

/// JSON with object keys sorted at every level and no insignificant space.
pub fn canonical_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// The segments of a JSON pointer, unescaped, or why it is not one.
pub fn pointer_segments(pointer: &str) -> Result<Vec<String>, &'static str> {
    if pointer.len() > MAX_POINTER {
        return Err("is longer than 256 characters");
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("is not a JSON pointer (it must start with '/')");
    };
    rest.split('/')
        .map(|segment| {
            if segment.is_empty() {
                return Err("has an empty segment");
            }
            // '~' must be followed by 0 or 1.
            let mut chars = segment.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                    return Err("has a '~' not followed by 0 or 1");
                }
            }
            Ok(segment.replace("~1", "/").replace("~0", "~"))
        })
        .collect()
}

/// Whether a JSON Schema declares the field a pointer's segments name.
/// `None` when the schema says nothing about properties at that level
/// (then anything goes).
fn schema_declares(schema: &Value, segments: &[String]) -> Option<bool> {
    let mut node = schema;
    for segment in segments {
        let properties = node.get("properties")?.as_object()?;
        match properties.get(segment) {
            Some(child) => node = child,
            None => return Some(false),
        }
    }
    Some(true)
}

/// Checks a field a contract or stream names (RFC 6901): a JSON pointer that, when the
/// schema declares properties, names one of them.
pub fn check_field(list: &str, field: &str, schema: &Value, problems: &mut Vec<String>) {
    match pointer_segments(field) {
        Err(why) => problems.push(format!("{list}: {field:?} {why}")),
        Ok(segments) => {
            if schema_declares(schema, &segments) == Some(false) {
                problems.push(format!(
                    "{list}: {field:?} is not a field of the stream's schema"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = serde_json::json!({"b": 1, "a": {"d": [2, {"f": 0, "e": 1}], "c": "x"}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":"x","d":[2,{"e":1,"f":0}]},"b":1}"#
        );
    }

    #[test]
    fn pointers_unescape_and_refuse_what_is_not_one() {
        assert_eq!(pointer_segments("/a~1b/c~0d").unwrap(), ["a/b", "c~d"]);
        for bad in ["a", "/a//b", "/a~2", ""] {
            assert!(pointer_segments(bad).is_err(), "{bad:?}");
        }
    }
}
