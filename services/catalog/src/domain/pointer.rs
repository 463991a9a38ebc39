//! JSON pointers (RFC 6901) into record values, checked against a stream's
//! JSON Schema.

use freeport_common::json::pointer_segments;
use serde_json::Value;

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
