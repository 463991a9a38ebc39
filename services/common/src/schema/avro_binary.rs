//! Avro's binary encoding, to and from JSON values in the form Confluent's
//! REST Proxy reads and writes them (Avro's JSON encoding): a record is an
//! object, an enum its symbol, `bytes` and `fixed` a string of code points
//! 0-255, a map an object, and a union `null` or `{"<branch>": value}`
//! (the branch named by its type: `"string"`, `"acme.Order"`, `"array"`).
//!
//! Writing is a little more forgiving than Avro's JSON decoder, as the
//! Python and JavaScript serializers are: a union value that is not tagged
//! goes to the first branch it fits, and a record field left out takes its
//! default. Reading always tags union values, so what it writes reads back
//! the same under [`encode`].
//!
//! Every problem names where it is, as a JSON pointer into the value
//! (`/items/2/price: 1.5 is not a long`).

use serde_json::{Map, Number, Value};

use super::avro::{AvroSchema, Node};

/// Deepest nesting read or written: a recursive schema's data ends here
/// instead of the stack.
const MAX_DEPTH: usize = 64;

/// `value` in Avro's binary encoding under `schema`.
pub fn encode(schema: &AvroSchema, value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    Writer {
        schema,
        out: &mut out,
    }
    .write(&schema.root, value, "", 0)?;
    Ok(out)
}

/// The value `bytes` holds under `schema`, in Avro's JSON encoding; every
/// byte must be used.
pub fn decode(schema: &AvroSchema, bytes: &[u8]) -> Result<Value, String> {
    read_all(schema, bytes, true)
}

/// [`decode`] with union values untagged (`"x"`, not `{"string": "x"}`):
/// the plain value, as a contract's terms name its fields. [`encode`]
/// writes it back under a schema with the same unions.
pub fn decode_plain(schema: &AvroSchema, bytes: &[u8]) -> Result<Value, String> {
    read_all(schema, bytes, false)
}

fn read_all(schema: &AvroSchema, bytes: &[u8], tagged: bool) -> Result<Value, String> {
    let mut reader = Reader {
        schema,
        bytes,
        at: 0,
        tagged,
    };
    let value = reader.read(&schema.root, "", 0)?;
    if reader.at != bytes.len() {
        return Err(format!(
            "{} bytes left over after the value",
            bytes.len() - reader.at
        ));
    }
    Ok(value)
}

/// The name a union branch is tagged with in Avro's JSON encoding.
fn branch_name(schema: &AvroSchema, node: &Node) -> String {
    match schema.resolve(node) {
        Node::Primitive(p) => (*p).to_string(),
        Node::Record { name, .. } | Node::Enum { name, .. } | Node::Fixed { name, .. } => {
            name.clone()
        }
        Node::Array(_) => "array".into(),
        Node::Map(_) => "map".into(),
        Node::Union(_) => "union".into(),
        Node::Named(name) => name.clone(),
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

fn zigzag(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn length(out: &mut Vec<u8>, n: usize) {
    zigzag(out, i64::try_from(n).unwrap_or(i64::MAX));
}

/// A string of code points 0-255 as the bytes it stands for.
fn byte_string(text: &str, path: &str) -> Result<Vec<u8>, String> {
    text.chars()
        .map(|c| {
            u8::try_from(u32::from(c)).map_err(|_| {
                format!(
                    "{}: bytes are written as a string of code points 0-255; {c:?} is not one",
                    at(path)
                )
            })
        })
        .collect()
}

struct Writer<'a> {
    schema: &'a AvroSchema,
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn write(
        &mut self,
        node: &Node,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("{}: nested deeper than {MAX_DEPTH}", at(path)));
        }
        let not = |what: &str| format!("{}: {value} is not {what}", at(path));
        match self.schema.resolve(node) {
            Node::Primitive(primitive) => match *primitive {
                "null" => value.is_null().then_some(()).ok_or_else(|| not("null")),
                "boolean" => {
                    let b = value.as_bool().ok_or_else(|| not("a boolean"))?;
                    self.out.push(u8::from(b));
                    Ok(())
                }
                "int" => {
                    let n = value
                        .as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .ok_or_else(|| not("an int (32 bits)"))?;
                    zigzag(self.out, i64::from(n));
                    Ok(())
                }
                "long" => {
                    let n = value.as_i64().ok_or_else(|| not("a long"))?;
                    zigzag(self.out, n);
                    Ok(())
                }
                "float" => {
                    let n = value.as_f64().ok_or_else(|| not("a float"))?;
                    self.out.extend_from_slice(&(n as f32).to_le_bytes());
                    Ok(())
                }
                "double" => {
                    let n = value.as_f64().ok_or_else(|| not("a double"))?;
                    self.out.extend_from_slice(&n.to_le_bytes());
                    Ok(())
                }
                "string" => {
                    let text = value.as_str().ok_or_else(|| not("a string"))?;
                    length(self.out, text.len());
                    self.out.extend_from_slice(text.as_bytes());
                    Ok(())
                }
                "bytes" => {
                    let text = value.as_str().ok_or_else(|| not("bytes (a string)"))?;
                    let bytes = byte_string(text, path)?;
                    length(self.out, bytes.len());
                    self.out.extend_from_slice(&bytes);
                    Ok(())
                }
                other => Err(format!("{}: unknown primitive {other}", at(path))),
            },
            Node::Record { name, fields, .. } => {
                let object = value
                    .as_object()
                    .ok_or_else(|| not(&format!("a record {name} (an object)")))?;
                for field in fields {
                    let here = format!("{path}/{}", field.name);
                    match (object.get(&field.name), &field.default) {
                        (Some(v), _) => self.write(&field.schema, v, &here, depth + 1)?,
                        (None, Some(default)) => {
                            self.write_default(&field.schema, default, &here, depth + 1)?;
                        }
                        (None, None) => {
                            return Err(format!(
                                "{}: field {:?} of record {name} is missing and has no default",
                                at(path),
                                field.name
                            ))
                        }
                    }
                }
                if let Some(unknown) = object
                    .keys()
                    .find(|k| !fields.iter().any(|f| &f.name == *k))
                {
                    return Err(format!(
                        "{}: record {name} has no field {unknown:?}",
                        at(path)
                    ));
                }
                Ok(())
            }
            Node::Enum { name, symbols, .. } => {
                let symbol = value.as_str().ok_or_else(|| not("an enum symbol"))?;
                let index = symbols.iter().position(|s| s == symbol).ok_or_else(|| {
                    format!(
                        "{}: {symbol:?} is not a symbol of enum {name} ({})",
                        at(path),
                        symbols.join(", ")
                    )
                })?;
                length(self.out, index);
                Ok(())
            }
            Node::Fixed { name, size, .. } => {
                let text = value
                    .as_str()
                    .ok_or_else(|| not("fixed bytes (a string)"))?;
                let bytes = byte_string(text, path)?;
                if bytes.len() as u64 != *size {
                    return Err(format!(
                        "{}: fixed {name} holds {size} bytes, not {}",
                        at(path),
                        bytes.len()
                    ));
                }
                self.out.extend_from_slice(&bytes);
                Ok(())
            }
            Node::Array(items) => {
                let list = value.as_array().ok_or_else(|| not("an array"))?;
                if !list.is_empty() {
                    length(self.out, list.len());
                    for (i, item) in list.iter().enumerate() {
                        self.write(items, item, &format!("{path}/{i}"), depth + 1)?;
                    }
                }
                self.out.push(0);
                Ok(())
            }
            Node::Map(values) => {
                let object = value.as_object().ok_or_else(|| not("a map (an object)"))?;
                if !object.is_empty() {
                    length(self.out, object.len());
                    for (key, item) in object {
                        length(self.out, key.len());
                        self.out.extend_from_slice(key.as_bytes());
                        self.write(values, item, &format!("{path}/{key}"), depth + 1)?;
                    }
                }
                self.out.push(0);
                Ok(())
            }
            Node::Union(branches) => self.write_union(branches, value, path, depth),
            Node::Named(name) => Err(format!("{}: unknown type {name}", at(path))),
        }
    }

    fn write_union(
        &mut self,
        branches: &[Node],
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        // Tagged, as Avro's JSON encoding writes it: {"<branch>": value}.
        if let Some((tag, inner)) = value
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        {
            if let Some(i) = branches.iter().position(|b| {
                branch_name(self.schema, b) == *tag || short(&branch_name(self.schema, b)) == tag
            }) {
                length(self.out, i);
                return self.write(&branches[i], inner, &format!("{path}/{tag}"), depth + 1);
            }
        }
        // Untagged: the first branch it fits.
        for (i, branch) in branches.iter().enumerate() {
            let mut trial = Vec::new();
            let fits = Writer {
                schema: self.schema,
                out: &mut trial,
            }
            .write(branch, value, path, depth + 1)
            .is_ok();
            if fits {
                length(self.out, i);
                self.out.extend_from_slice(&trial);
                return Ok(());
            }
        }
        let names: Vec<String> = branches
            .iter()
            .map(|b| branch_name(self.schema, b))
            .collect();
        Err(format!(
            "{}: {value} fits no branch of the union [{}]",
            at(path),
            names.join(", ")
        ))
    }

    /// A default: for a union, a value of its first branch (untagged).
    fn write_default(
        &mut self,
        node: &Node,
        default: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        match self.schema.resolve(node) {
            Node::Union(branches) if !branches.is_empty() => {
                length(self.out, 0);
                self.write(&branches[0], default, path, depth)
            }
            _ => self.write(node, default, path, depth),
        }
    }
}

fn short(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

struct Reader<'a> {
    schema: &'a AvroSchema,
    bytes: &'a [u8],
    at: usize,
    /// Whether union values come tagged with their branch.
    tagged: bool,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, path: &str) -> Result<&[u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| format!("{}: the value ends early", at(path)))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn long(&mut self, path: &str) -> Result<i64, String> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1, path)?[0];
            z |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(format!(
            "{}: a variable-length number runs past 64 bits",
            at(path)
        ))
    }

    /// A length: not negative, and not more than the bytes left.
    fn count(&mut self, path: &str, least: usize) -> Result<usize, String> {
        let n = self.long(path)?;
        let n = usize::try_from(n).map_err(|_| format!("{}: a length of {n}", at(path)))?;
        if n.saturating_mul(least) > self.bytes.len() - self.at {
            return Err(format!(
                "{}: a length of {n} is more than the value holds",
                at(path)
            ));
        }
        Ok(n)
    }

    fn read(&mut self, node: &Node, path: &str, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("{}: nested deeper than {MAX_DEPTH}", at(path)));
        }
        Ok(match self.schema.resolve(node) {
            Node::Primitive(primitive) => match *primitive {
                "null" => Value::Null,
                "boolean" => match self.take(1, path)?[0] {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => return Err(format!("{}: {b} is not a boolean", at(path))),
                },
                "int" => {
                    let n = self.long(path)?;
                    let n =
                        i32::try_from(n).map_err(|_| format!("{}: {n} is not an int", at(path)))?;
                    Value::from(n)
                }
                "long" => Value::from(self.long(path)?),
                "float" => {
                    let raw: [u8; 4] = self.take(4, path)?.try_into().map_err(|_| "float")?;
                    number(f64::from(f32::from_le_bytes(raw)), path)?
                }
                "double" => {
                    let raw: [u8; 8] = self.take(8, path)?.try_into().map_err(|_| "double")?;
                    number(f64::from_le_bytes(raw), path)?
                }
                "string" => {
                    let n = self.count(path, 1)?;
                    let raw = self.take(n, path)?;
                    Value::String(
                        std::str::from_utf8(raw)
                            .map_err(|_| format!("{}: a string that is not UTF-8", at(path)))?
                            .to_string(),
                    )
                }
                "bytes" => {
                    let n = self.count(path, 1)?;
                    Value::String(self.take(n, path)?.iter().map(|b| char::from(*b)).collect())
                }
                other => return Err(format!("{}: unknown primitive {other}", at(path))),
            },
            Node::Record { fields, .. } => {
                let mut object = Map::new();
                for field in fields {
                    let here = format!("{path}/{}", field.name);
                    object.insert(
                        field.name.clone(),
                        self.read(&field.schema, &here, depth + 1)?,
                    );
                }
                Value::Object(object)
            }
            Node::Enum { name, symbols, .. } => {
                let i = self.long(path)?;
                let symbol = usize::try_from(i)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .ok_or_else(|| format!("{}: {i} is not a symbol of enum {name}", at(path)))?;
                Value::String(symbol.clone())
            }
            Node::Fixed { size, .. } => {
                let n = usize::try_from(*size).map_err(|_| "fixed size")?;
                Value::String(self.take(n, path)?.iter().map(|b| char::from(*b)).collect())
            }
            Node::Array(items) => {
                let mut list = Vec::new();
                loop {
                    let n = self.block(path)?;
                    if n == 0 {
                        break;
                    }
                    for _ in 0..n {
                        let here = format!("{path}/{}", list.len());
                        list.push(self.read(items, &here, depth + 1)?);
                    }
                }
                Value::Array(list)
            }
            Node::Map(values) => {
                let mut object = Map::new();
                loop {
                    let n = self.block(path)?;
                    if n == 0 {
                        break;
                    }
                    for _ in 0..n {
                        let key = match self.read(&Node::Primitive("string"), path, depth + 1)? {
                            Value::String(key) => key,
                            _ => return Err(format!("{}: a map key", at(path))),
                        };
                        let here = format!("{path}/{key}");
                        let value = self.read(values, &here, depth + 1)?;
                        object.insert(key, value);
                    }
                }
                Value::Object(object)
            }
            Node::Union(branches) => {
                let i = self.long(path)?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| format!("{}: {i} is not a branch of the union", at(path)))?;
                let value = self.read(branch, path, depth + 1)?;
                // Plain: the branch's value as it is; tagged: wrapped in
                // its branch's name, but for null.
                if !self.tagged {
                    value
                } else if value.is_null()
                    && matches!(self.schema.resolve(branch), Node::Primitive("null"))
                {
                    Value::Null
                } else {
                    let mut tagged = Map::new();
                    tagged.insert(branch_name(self.schema, branch), value);
                    Value::Object(tagged)
                }
            }
            Node::Named(name) => return Err(format!("{}: unknown type {name}", at(path))),
        })
    }

    /// The item count of an array or map block (a negative count is
    /// followed by the block's size in bytes, which is skipped). A block
    /// may not claim more items than bytes are left: each item of a type
    /// that takes no bytes (`null`) would otherwise cost memory for nothing.
    fn block(&mut self, path: &str) -> Result<usize, String> {
        let n = self.long(path)?;
        if n < 0 {
            self.long(path)?;
        }
        let n = usize::try_from(n.unsigned_abs())
            .map_err(|_| format!("{}: a block of {n}", at(path)))?;
        if n > self.bytes.len() - self.at {
            return Err(format!(
                "{}: a block of {n} items is more than the value holds",
                at(path)
            ));
        }
        Ok(n)
    }
}

fn number(n: f64, path: &str) -> Result<Value, String> {
    Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| format!("{}: {n} has no JSON form", at(path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn schema(value: Value) -> AvroSchema {
        AvroSchema::parse(&value).unwrap()
    }

    fn order() -> AvroSchema {
        schema(json!({
            "type": "record", "name": "Order", "namespace": "acme",
            "fields": [
                {"name": "id", "type": "long"},
                {"name": "note", "type": ["null", "string"], "default": null},
                {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
                {"name": "lines", "type": {"type": "array", "items": {
                    "type": "record", "name": "Line", "fields": [
                        {"name": "sku", "type": "string"},
                        {"name": "price", "type": "double"}
                    ]}}},
                {"name": "tags", "type": {"type": "map", "values": "int"}, "default": {}},
                {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 2}},
                {"name": "raw", "type": "bytes"}
            ]
        }))
    }

    #[test]
    fn writes_what_avro_writes() {
        // The specification's examples: zigzag longs, length-prefixed text.
        let long = schema(json!("long"));
        assert_eq!(encode(&long, &json!(-64)).unwrap(), [0x7f]);
        assert_eq!(encode(&long, &json!(64)).unwrap(), [0x80, 0x01]);
        let text = schema(json!("string"));
        assert_eq!(
            encode(&text, &json!("foo")).unwrap(),
            [0x06, b'f', b'o', b'o']
        );
        let union = schema(json!(["null", "string"]));
        assert_eq!(encode(&union, &json!(null)).unwrap(), [0x00]);
        assert_eq!(
            encode(&union, &json!({"string": "a"})).unwrap(),
            [0x02, 0x02, b'a']
        );
        assert_eq!(
            encode(&union, &json!("a")).unwrap(),
            [0x02, 0x02, b'a'],
            "untagged"
        );
    }

    #[test]
    fn a_record_reads_back_as_written_with_defaults_filled_in() {
        let schema = order();
        let value = json!({
            "id": 7, "status": "PAID",
            "lines": [{"sku": "a", "price": 1.5}, {"sku": "b", "price": 2.0}],
            "hash": "\u{0}\u{ff}", "raw": "hi"
        });
        let bytes = encode(&schema, &value).unwrap();
        let read = decode(&schema, &bytes).unwrap();
        assert_eq!(read["note"], Value::Null, "the default");
        assert_eq!(read["tags"], json!({}));
        assert_eq!(read["lines"][1]["price"], json!(2.0));
        assert_eq!(read["hash"], json!("\u{0}\u{ff}"));
        assert_eq!(
            encode(&schema, &read).unwrap(),
            bytes,
            "what it reads, it writes back"
        );
        let plain = decode_plain(&schema, &bytes).unwrap();
        assert_eq!(plain["note"], Value::Null);
        assert_eq!(encode(&schema, &plain).unwrap(), bytes, "and untagged too");
    }

    #[test]
    fn problems_name_where_they_are() {
        let schema = order();
        let wrong = json!({"id": 1, "status": "LOST", "lines": [], "hash": "ab", "raw": ""});
        let problem = encode(&schema, &wrong).unwrap_err();
        assert!(
            problem.starts_with("/status:") && problem.contains("LOST"),
            "{problem}"
        );
        let wrong = json!({"id": 1, "status": "NEW", "lines": [{"sku": "a", "price": "x"}], "hash": "ab", "raw": ""});
        assert!(encode(&schema, &wrong)
            .unwrap_err()
            .starts_with("/lines/0/price:"));
        let missing = json!({"status": "NEW", "lines": [], "hash": "ab", "raw": ""});
        assert!(encode(&schema, &missing).unwrap_err().contains("\"id\""));
        let extra = json!({"id": 1, "status": "NEW", "lines": [], "hash": "ab", "raw": "", "x": 1});
        assert!(encode(&schema, &extra)
            .unwrap_err()
            .contains("no field \"x\""));
        let int = AvroSchema::parse(&json!("int")).unwrap();
        assert!(
            encode(&int, &json!(3_000_000_000_i64)).is_err(),
            "beyond 32 bits"
        );
    }

    #[test]
    fn plain_union_values_are_the_branch_s_value() {
        let schema = AvroSchema::parse(&json!({"type": "record", "name": "R", "fields": [
            {"name": "email", "type": ["null", "string"]},
            {"name": "phone", "type": ["null", "string"]}
        ]}))
        .unwrap();
        let bytes = encode(&schema, &json!({"email": "a@b.c", "phone": null})).unwrap();
        assert_eq!(
            decode_plain(&schema, &bytes).unwrap(),
            json!({"email": "a@b.c", "phone": null})
        );
        assert_eq!(
            decode(&schema, &bytes).unwrap(),
            json!({"email": {"string": "a@b.c"}, "phone": null})
        );
    }

    #[test]
    fn bad_bytes_are_refused_not_trusted() {
        let schema = order();
        // A huge array count with nothing behind it.
        let mut bytes = encode(
            &schema,
            &json!({"id": 1, "status": "NEW", "lines": [], "hash": "ab", "raw": ""}),
        )
        .unwrap();
        assert!(
            decode(&schema, &bytes[..bytes.len() - 1]).is_err(),
            "ends early"
        );
        bytes.push(0);
        assert!(decode(&schema, &bytes).unwrap_err().contains("left over"));
        let list = AvroSchema::parse(&json!({"type": "array", "items": "long"})).unwrap();
        assert!(decode(&list, &[0xfe, 0xff, 0xff, 0xff, 0x0f]).is_err());
        // A recursive list nested past the limit.
        let linked = AvroSchema::parse(&json!({"type": "record", "name": "Node", "fields": [
            {"name": "next", "type": ["null", "Node"]}
        ]}))
        .unwrap();
        let deep = vec![0x02; 200];
        assert!(decode(&linked, &deep).unwrap_err().contains("deeper"));
    }

    proptest! {
        #[test]
        fn longs_and_strings_round_trip(n in any::<i64>(), text in ".{0,40}") {
            let record = schema(json!({"type": "record", "name": "R", "fields": [
                {"name": "n", "type": "long"}, {"name": "s", "type": "string"}
            ]}));
            let value = json!({"n": n, "s": text});
            let bytes = encode(&record, &value).unwrap();
            prop_assert_eq!(decode(&record, &bytes).unwrap(), value);
        }

        #[test]
        fn no_bytes_make_the_reader_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&order(), &bytes);
        }
    }
}
