//! JSON pointers (RFC 6901) into record values, checked against a stream's
//! JSON Schema.

use serde_json::Value;

const MAX_POINTER: usize = 256;

/// The segments of a JSON pointer, unescaped, or why it is not one.
pub(crate) fn pointer_segments(pointer: &str) -> Result<Vec<String>, &'static str> {
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

/// Whether the schema declares the field a pointer names. `None` when the
/// schema says nothing about properties at that level (then anything goes).
pub(crate) fn schema_declares(schema: &Value, segments: &[String]) -> Option<bool> {
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

/// Checks a field a contract or stream names: a JSON pointer that, when the
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
