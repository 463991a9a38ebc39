//! Protobuf schemas, as a schema registry keeps them.
//!
//! - A schema is one `.proto` file, given as its text or as the base64 of
//!   its serialized `FileDescriptorProto` (what confluent-kafka's Python
//!   `ProtobufSerializer` registers). Either way it is kept as canonical
//!   text ([`ProtoSchema::text`]), so the two spellings of one schema are
//!   one schema with one id. Imports other than Google's well-known types
//!   need schema references, which are not taken yet.
//! - Compatibility follows the wire format, as Confluent's registry checks
//!   it: adding and removing optional fields is fine; a message removed, a
//!   field changing kind or incompatibly changing scalar type (int32 and
//!   int64 share a wire type, string and double do not), a field changing
//!   its message or enum type, a field moved into an existing oneof, a
//!   required field added or removed, or the package changing breaks.
//! - Values are JSON in the proto3 JSON mapping with the proto field names
//!   (`customer_id`, not `customerId`), as Confluent's REST Proxy shows
//!   them; in the Confluent wire format a Protobuf payload starts with the
//!   message indexes (which message of the file it is: a single zero byte
//!   for the first).

use std::fmt::Write;

use base64::Engine;
use prost::Message;
use prost_reflect::{DynamicMessage, FileDescriptor, Kind, MessageDescriptor};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
};
use serde_json::Value;

use super::{Dependency, Source};

/// The name a schema given as text is compiled under.
const FILE_NAME: &str = "schema.proto";

/// Most message indexes a wire-format payload may carry (the nesting depth
/// of the message it names).
const MAX_INDEXES: usize = 64;

/// A compiled Protobuf schema.
#[derive(Debug, Clone)]
pub struct ProtoSchema {
    file: FileDescriptor,
    /// The files it imports (schema references), kept to compile what is
    /// derived from it.
    dependencies: Vec<Dependency>,
}

/// The file a schema's text or base64 descriptor is, before compiling:
/// named `name` (a dependency's import path), or for the schema itself
/// by its descriptor's name or [`FILE_NAME`].
fn source_file(name: Option<&str>, text: &str) -> Result<protox::file::File, Vec<String>> {
    let descriptor = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| FileDescriptorProto::decode(bytes.as_slice()).ok())
        .filter(|file| !file.message_type.is_empty());
    match descriptor {
        Some(mut file) => {
            if let Some(name) = name {
                file.name = Some(name.into());
            } else if file.name().is_empty() {
                file.name = Some(FILE_NAME.into());
            }
            Ok(protox::file::File::from_file_descriptor_proto(file))
        }
        None => protox::file::File::from_source(name.unwrap_or(FILE_NAME), text)
            .map_err(|e| vec![format!("not a .proto file: {e}")]),
    }
}

/// Resolves the schema's own file, the files its references name, and
/// Google's well-known types.
struct Resolver {
    file: protox::file::File,
    imports: Vec<protox::file::File>,
    google: protox::file::GoogleFileResolver,
}

impl protox::file::FileResolver for Resolver {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        if name == self.file.name() {
            return Ok(self.file.clone());
        }
        if let Some(file) = self.imports.iter().find(|f| f.name() == name) {
            return Ok(file.clone());
        }
        self.google.open_file(name)
    }
}

impl ProtoSchema {
    /// A schema as the catalog keeps it: a JSON string holding the text
    /// (or a base64 descriptor).
    pub fn parse(schema: &Value) -> Result<ProtoSchema, Vec<String>> {
        ProtoSchema::parse_with(Source::alone(schema))
    }

    /// A schema with the files it imports (its references, by import
    /// path).
    pub fn parse_with(source: Source<'_>) -> Result<ProtoSchema, Vec<String>> {
        let text = |schema: &Value| {
            schema
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| vec!["/: a Protobuf schema is the text of a .proto file".into()])
        };
        let main = text(source.schema)?;
        let dependencies = source.dependencies.to_vec();
        std::panic::catch_unwind(move || ProtoSchema::compile(&main, dependencies))
            .unwrap_or_else(|_| Err(vec!["not a .proto file the compiler can read".to_string()]))
    }

    /// `.proto` text, or the base64 of a serialized `FileDescriptorProto`.
    /// A panic of the compiler on some input is that input's refusal, not
    /// the caller's: it is the caller's text that is wrong.
    pub fn parse_text(text: &str) -> Result<ProtoSchema, Vec<String>> {
        ProtoSchema::parse(&Value::String(text.to_string()))
    }

    fn compile(text: &str, dependencies: Vec<Dependency>) -> Result<ProtoSchema, Vec<String>> {
        let file = source_file(None, text)?;
        let name = file.name().to_string();
        let mut imports = Vec::new();
        for dependency in &dependencies {
            let path = &dependency.reference.name;
            let text = dependency.schema.as_str().unwrap_or_default();
            imports.push(source_file(Some(path), text).map_err(|e| {
                e.into_iter()
                    .map(|e| format!("reference {path:?}: {e}"))
                    .collect::<Vec<_>>()
            })?);
        }
        let missing: Vec<String> = file
            .file_descriptor_proto()
            .dependency
            .iter()
            .filter(|d| !d.starts_with("google/protobuf/"))
            .filter(|d| !imports.iter().any(|i| i.name() == d.as_str()))
            .map(|d| format!("imports {d:?}, which no schema reference names: give it as a reference (name {d:?}, with the subject and version that have that file)"))
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        let mut compiler = protox::Compiler::with_file_resolver(Resolver {
            file,
            imports,
            google: protox::file::GoogleFileResolver::new(),
        });
        compiler
            .open_file(&name)
            .map_err(|e| vec![format!("not a valid .proto file: {e}")])?;
        let file = compiler
            .descriptor_pool()
            .get_file_by_name(&name)
            .ok_or_else(|| vec![format!("{name} did not compile")])?;
        if !matches!(
            file.file_descriptor_proto().syntax(),
            "" | "proto2" | "proto3"
        ) {
            return Err(vec![format!(
                "syntax {:?} is not taken: proto2 or proto3",
                file.file_descriptor_proto().syntax()
            )]);
        }
        if file.messages().len() == 0 {
            return Err(vec!["a schema needs at least one message".into()]);
        }
        Ok(ProtoSchema { file, dependencies })
    }

    /// The schema as canonical `.proto` text.
    pub fn text(&self) -> String {
        print(self.file.file_descriptor_proto())
    }

    /// The schema as a serialized `FileDescriptorProto` (what a registry
    /// answers with `format=serialized`).
    pub fn serialized(&self) -> Vec<u8> {
        self.file.file_descriptor_proto().encode_to_vec()
    }

    /// The file's first message: the one REST Proxy writes values as.
    pub fn first_message(&self) -> MessageDescriptor {
        self.file
            .messages()
            .next()
            .expect("a parsed schema has a message")
    }

    /// The message `indexes` names: the top-level message at the first,
    /// then nested ones.
    fn message_at(&self, indexes: &[usize]) -> Option<MessageDescriptor> {
        let (first, rest) = indexes.split_first()?;
        let mut message = self.file.messages().nth(*first)?;
        for index in rest {
            let child = message.child_messages().nth(*index)?;
            message = child;
        }
        Some(message)
    }

    /// A JSON value as the first message, encoded: the message indexes,
    /// then the payload.
    pub fn encode(&self, value: &Value) -> Result<Vec<u8>, String> {
        let message = DynamicMessage::deserialize(self.first_message(), value)
            .map_err(|e| format!("not a {}: {e}", self.first_message().full_name()))?;
        let mut out = vec![0];
        message
            .encode(&mut out)
            .map_err(|e| format!("cannot encode: {e}"))?;
        Ok(out)
    }

    /// Message indexes and a payload, as JSON (proto field names, default
    /// values included).
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, String> {
        let (indexes, payload) = read_indexes(bytes)?;
        let descriptor = self
            .message_at(&indexes)
            .ok_or_else(|| format!("message indexes {indexes:?} name no message of the schema"))?;
        let message = DynamicMessage::decode(descriptor.clone(), payload)
            .map_err(|e| format!("not a {}: {e}", descriptor.full_name()))?;
        let options = prost_reflect::SerializeOptions::new()
            .use_proto_field_name(true)
            .skip_default_fields(false);
        message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|e| e.to_string())
    }

    /// The schema as values come out of contract terms: fields of the first
    /// message (`path`, by proto field name) dropped, or turned into
    /// strings. A field the message does not have is left alone.
    pub(crate) fn reshaped(&self, path: &[String], text: bool) -> Result<ProtoSchema, String> {
        let mut file = self.file.file_descriptor_proto().clone();
        let Some((name, rest)) = path.split_first() else {
            return Ok(self.clone());
        };
        if !rest.is_empty() {
            return Err("goes into a nested message; contract terms reshape the first message's own fields of a Protobuf value".into());
        }
        let message = &mut file.message_type[0];
        let Some(at) = message.field.iter().position(|f| f.name() == name) else {
            return Ok(self.clone());
        };
        if text {
            let field = &mut message.field[at];
            field.r#type = Some(Type::String.into());
            field.type_name = None;
            field.default_value = None;
            if field.label() == Label::Repeated {
                field.label = Some(Label::Optional.into());
            }
        } else {
            let removed = message.field.remove(at);
            remove_empty_oneof(message, removed.oneof_index);
        }
        let text = Value::String(print(&file));
        ProtoSchema::parse_with(Source {
            schema: &text,
            dependencies: &self.dependencies,
        })
        .map_err(|e| format!("the reshaped schema does not compile: {}", e.join("; ")))
    }
}

/// Removes oneof `index` from `message` once no field is in it, renumbering
/// the fields of later ones.
fn remove_empty_oneof(message: &mut DescriptorProto, index: Option<i32>) {
    let Some(index) = index else { return };
    if message.field.iter().any(|f| f.oneof_index == Some(index)) {
        return;
    }
    message.oneof_decl.remove(index as usize);
    for field in &mut message.field {
        if let Some(i) = field.oneof_index.filter(|i| *i > index) {
            field.oneof_index = Some(i - 1);
        }
    }
}

/// A zigzag varint, as Confluent writes message indexes.
fn read_varint(bytes: &[u8]) -> Result<(i64, &[u8]), String> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let signed = ((value >> 1) as i64) ^ -((value & 1) as i64);
            return Ok((signed, &bytes[i + 1..]));
        }
    }
    Err("the message indexes are cut short".into())
}

/// The message indexes at the start of a wire-format Protobuf payload, and
/// the payload after them.
fn read_indexes(bytes: &[u8]) -> Result<(Vec<usize>, &[u8]), String> {
    let (count, mut rest) = read_varint(bytes)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|c| *c <= MAX_INDEXES)
        .ok_or_else(|| format!("{count} message indexes: not a Protobuf payload"))?;
    let mut indexes = Vec::with_capacity(count);
    for _ in 0..count {
        let (index, after) = read_varint(rest)?;
        indexes.push(usize::try_from(index).map_err(|_| "a negative message index")?);
        rest = after;
    }
    Ok((indexes, rest))
}

/// Why a reader of `reader` cannot read every value written with `writer`:
/// each problem names the message, the field and Confluent's name for the
/// change.
pub fn reader_accepts(reader: &ProtoSchema, writer: &ProtoSchema) -> Vec<String> {
    let mut problems = Vec::new();
    let (old, new) = (writer.file.package_name(), reader.file.package_name());
    if old != new {
        problems.push(format!("package {old:?} became {new:?} (PACKAGE_CHANGED)"));
    }
    // The schema's own messages, then those of the files it imports (its
    // references): a referenced message changing is the schema's change.
    let imported = writer
        .file
        .parent_pool()
        .files()
        .filter(|f| f.name() != writer.file.name() && !f.name().starts_with("google/protobuf/"))
        .flat_map(|f| all_messages(&f));
    let own = all_messages(&writer.file).into_iter().map(|m| (m, true));
    for (written, is_own) in own.chain(imported.map(|m| (m, false))) {
        let wanted = if is_own {
            let name = written
                .full_name()
                .strip_prefix(old)
                .unwrap_or(written.full_name());
            format!("{new}{name}")
        } else {
            written.full_name().to_string()
        };
        let wanted = wanted.trim_start_matches('.');
        match reader.file.parent_pool().get_message_by_name(wanted) {
            None => problems.push(format!(
                "message {} was removed (MESSAGE_REMOVED)",
                written.full_name()
            )),
            Some(read) => message_problems(&read, &written, &mut problems),
        }
    }
    problems
}

/// Every message of a file, nested ones too, map entries left out.
fn all_messages(file: &FileDescriptor) -> Vec<MessageDescriptor> {
    let mut all = Vec::new();
    let mut todo: Vec<MessageDescriptor> = file.messages().collect();
    while let Some(message) = todo.pop() {
        todo.extend(message.child_messages());
        if !message.is_map_entry() {
            all.push(message);
        }
    }
    all.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    all
}

/// Scalar types that share a wire encoding, so one reads the other.
fn scalar_group(kind: &Kind) -> Option<u8> {
    Some(match kind {
        Kind::Int32 | Kind::Uint32 | Kind::Int64 | Kind::Uint64 | Kind::Bool => 0,
        Kind::Sint32 | Kind::Sint64 => 1,
        Kind::Fixed32 | Kind::Sfixed32 => 2,
        Kind::Fixed64 | Kind::Sfixed64 => 3,
        Kind::String | Kind::Bytes => 4,
        Kind::Float => 5,
        Kind::Double => 6,
        Kind::Message(_) | Kind::Enum(_) => return None,
    })
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Message(m) => m.full_name().to_string(),
        Kind::Enum(e) => e.full_name().to_string(),
        scalar => format!("{scalar:?}").to_ascii_lowercase(),
    }
}

/// The oneof a field is in, unless it is proto3's synthetic one.
fn real_oneof(field: &prost_reflect::FieldDescriptor) -> Option<String> {
    field
        .containing_oneof()
        .filter(|o| !o.is_synthetic())
        .map(|o| o.name().to_string())
}

fn message_problems(
    read: &MessageDescriptor,
    written: &MessageDescriptor,
    problems: &mut Vec<String>,
) {
    let at = |field: &prost_reflect::FieldDescriptor| {
        format!(
            "message {}, field {} ({})",
            written.full_name(),
            field.number(),
            field.name()
        )
    };
    let required = |f: &prost_reflect::FieldDescriptor| {
        f.cardinality() == prost_reflect::Cardinality::Required
    };
    let old_oneofs: std::collections::BTreeSet<String> = written
        .oneofs()
        .filter(|o| !o.is_synthetic())
        .map(|o| o.name().to_string())
        .collect();
    let mut moved_into: std::collections::BTreeMap<String, usize> = Default::default();
    for old in written.fields() {
        let Some(new) = read.get_field(old.number()) else {
            if required(&old) {
                problems.push(format!(
                    "{}: a required field was removed (REQUIRED_FIELD_REMOVED)",
                    at(&old)
                ));
            }
            continue;
        };
        let (old_kind, new_kind) = (old.kind(), new.kind());
        match (scalar_group(&old_kind), scalar_group(&new_kind)) {
            (Some(a), Some(b)) if a != b => problems.push(format!(
                "{}: type {} became {}, which does not read it (FIELD_SCALAR_KIND_CHANGED)",
                at(&old),
                kind_name(&old_kind),
                kind_name(&new_kind)
            )),
            (Some(_), None) | (None, Some(_)) => problems.push(format!(
                "{}: type {} became {} (FIELD_KIND_CHANGED)",
                at(&old),
                kind_name(&old_kind),
                kind_name(&new_kind)
            )),
            (None, None) => {
                let same_kind = matches!(
                    (&old_kind, &new_kind),
                    (Kind::Message(_), Kind::Message(_)) | (Kind::Enum(_), Kind::Enum(_))
                );
                let (a, b) = (kind_name(&old_kind), kind_name(&new_kind));
                let strip = |name: &str, file: &str| {
                    name.strip_prefix(file)
                        .unwrap_or(name)
                        .trim_start_matches('.')
                        .to_string()
                };
                let renamed = strip(&a, written.package_name()) != strip(&b, read.package_name());
                if !same_kind {
                    problems.push(format!(
                        "{}: type {a} became {b} (FIELD_KIND_CHANGED)",
                        at(&old)
                    ));
                } else if renamed {
                    problems.push(format!(
                        "{}: type {a} became {b} (FIELD_NAMED_TYPE_CHANGED)",
                        at(&old)
                    ));
                }
            }
            _ => {}
        }
        if required(&new) && !required(&old) {
            problems.push(format!(
                "{}: the field became required (REQUIRED_FIELD_ADDED)",
                at(&old)
            ));
        }
        if let (None, Some(oneof)) = (real_oneof(&old), real_oneof(&new)) {
            if old_oneofs.contains(&oneof) {
                problems.push(format!(
                    "{}: moved into the existing oneof {oneof} (FIELD_MOVED_TO_EXISTING_ONEOF)",
                    at(&old)
                ));
            } else {
                *moved_into.entry(oneof).or_default() += 1;
            }
        }
    }
    for new in read.fields() {
        if required(&new) && written.get_field(new.number()).is_none() {
            problems.push(format!(
                "message {}, field {} ({}): a required field was added (REQUIRED_FIELD_ADDED)",
                written.full_name(),
                new.number(),
                new.name()
            ));
        }
    }
    for (oneof, count) in moved_into {
        if count > 1 {
            problems.push(format!(
                "message {}: {count} existing fields moved into the new oneof {oneof} (MULTIPLE_FIELDS_MOVED_TO_ONEOF)",
                written.full_name()
            ));
        }
    }
}

/// A file descriptor as `.proto` text: syntax, package, imports, messages
/// (nested types, enums, oneofs, maps, reserved numbers and names) and
/// enums. Options other than proto2 defaults and `packed` are left out:
/// they change nothing a value's bytes depend on.
fn print(file: &FileDescriptorProto) -> String {
    let mut out = String::new();
    let syntax = match file.syntax() {
        "" => "proto2",
        other => other,
    };
    let _ = writeln!(out, "syntax = \"{syntax}\";");
    if !file.package().is_empty() {
        let _ = writeln!(out, "package {};", file.package());
    }
    for import in &file.dependency {
        let _ = writeln!(out, "import \"{}\";", escape(import));
    }
    for message in &file.message_type {
        out.push('\n');
        print_message(&mut out, message, 0, syntax == "proto3");
    }
    for enumeration in &file.enum_type {
        out.push('\n');
        print_enum(&mut out, enumeration, 0);
    }
    out
}

fn indent(out: &mut String, depth: usize) {
    out.push_str(&"  ".repeat(depth));
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn print_message(out: &mut String, message: &DescriptorProto, depth: usize, proto3: bool) {
    indent(out, depth);
    let _ = writeln!(out, "message {} {{", message.name());
    let is_entry = |m: &DescriptorProto| m.options.as_ref().is_some_and(|o| o.map_entry());
    for enumeration in &message.enum_type {
        print_enum(out, enumeration, depth + 1);
    }
    let entry_of = |field: &FieldDescriptorProto| {
        let last = field.type_name().rsplit('.').next().unwrap_or_default();
        (field.label() == Label::Repeated && field.r#type() == Type::Message)
            .then(|| {
                message
                    .nested_type
                    .iter()
                    .find(|m| is_entry(m) && m.name() == last)
            })
            .flatten()
    };
    let in_oneof =
        |field: &FieldDescriptorProto| field.oneof_index.filter(|_| !field.proto3_optional());
    let mut printed = std::collections::BTreeSet::new();
    let mut print_field_at = |out: &mut String, field: &FieldDescriptorProto| match in_oneof(field)
    {
        None => print_field(out, field, entry_of(field), depth + 1, proto3, false),
        Some(index) if printed.insert(index) => {
            let name = message
                .oneof_decl
                .get(index as usize)
                .map(|o| o.name())
                .unwrap_or_default();
            indent(out, depth + 1);
            let _ = writeln!(out, "oneof {name} {{");
            for member in message.field.iter().filter(|f| in_oneof(f) == Some(index)) {
                print_field(out, member, None, depth + 2, proto3, true);
            }
            indent(out, depth + 1);
            out.push_str("}\n");
        }
        Some(_) => {}
    };
    // Nested types keep their order (message indexes count them), map
    // entries included: each entry comes where its map field is, so the
    // fields up to it are printed before the nested types after it.
    let mut fields = message.field.iter();
    for nested in &message.nested_type {
        if !is_entry(nested) {
            print_message(out, nested, depth + 1, proto3);
            continue;
        }
        for field in fields.by_ref() {
            print_field_at(out, field);
            if entry_of(field).is_some_and(|e| e.name() == nested.name()) {
                break;
            }
        }
    }
    for field in fields {
        print_field_at(out, field);
    }
    for range in &message.reserved_range {
        indent(out, depth + 1);
        let (start, end) = (range.start(), range.end() - 1);
        if start == end {
            let _ = writeln!(out, "reserved {start};");
        } else {
            let _ = writeln!(out, "reserved {start} to {end};");
        }
    }
    for name in &message.reserved_name {
        indent(out, depth + 1);
        let _ = writeln!(out, "reserved \"{}\";", escape(name));
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn type_name(field: &FieldDescriptorProto) -> String {
    match field.r#type() {
        Type::Message | Type::Enum | Type::Group => field.type_name().to_string(),
        scalar => scalar
            .as_str_name()
            .trim_start_matches("TYPE_")
            .to_ascii_lowercase(),
    }
}

fn print_field(
    out: &mut String,
    field: &FieldDescriptorProto,
    entry: Option<&DescriptorProto>,
    depth: usize,
    proto3: bool,
    in_oneof: bool,
) {
    indent(out, depth);
    let kind = match entry {
        Some(entry) => {
            let part = |number| {
                entry
                    .field
                    .iter()
                    .find(|f| f.number() == number)
                    .map(type_name)
                    .unwrap_or_default()
            };
            format!("map<{}, {}>", part(1), part(2))
        }
        None => type_name(field),
    };
    let label = match (field.label(), entry, in_oneof) {
        (_, Some(_), _) | (_, _, true) => "",
        (Label::Repeated, ..) => "repeated ",
        (Label::Required, ..) => "required ",
        (Label::Optional, ..) if !proto3 || field.proto3_optional() => "optional ",
        (Label::Optional, ..) => "",
    };
    let mut options = Vec::new();
    if let Some(default) = &field.default_value {
        options.push(match field.r#type() {
            Type::String | Type::Bytes => format!("default = \"{}\"", escape(default)),
            _ => format!("default = {default}"),
        });
    }
    if let Some(packed) = field.options.as_ref().and_then(|o| o.packed) {
        options.push(format!("packed = {packed}"));
    }
    let options = if options.is_empty() {
        String::new()
    } else {
        format!(" [{}]", options.join(", "))
    };
    let _ = writeln!(
        out,
        "{label}{kind} {} = {}{options};",
        field.name(),
        field.number()
    );
}

fn print_enum(out: &mut String, enumeration: &EnumDescriptorProto, depth: usize) {
    indent(out, depth);
    let _ = writeln!(out, "enum {} {{", enumeration.name());
    if enumeration
        .options
        .as_ref()
        .is_some_and(|o| o.allow_alias())
    {
        indent(out, depth + 1);
        out.push_str("option allow_alias = true;\n");
    }
    for value in &enumeration.value {
        indent(out, depth + 1);
        let _ = writeln!(out, "{} = {};", value.name(), value.number());
    }
    indent(out, depth);
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ORDER: &str = r#"
        syntax = "proto3";
        package acme;
        import "google/protobuf/timestamp.proto";
        message Order {
          int64 id = 1;
          string note = 2;
          repeated string tags = 3;
          map<string, int32> counts = 4;
          Customer customer = 5;
          oneof payment { string card = 6; string iban = 7; }
          optional double total = 8;
          Status status = 9;
          google.protobuf.Timestamp at = 10;
          message Customer { string email = 1; }
          enum Status { NEW = 0; PAID = 1; }
          reserved 20 to 22;
          reserved "old";
        }
        message Other { bool flag = 1; }
    "#;

    fn schema(text: &str) -> ProtoSchema {
        ProtoSchema::parse_text(text).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
    }

    #[test]
    fn text_and_descriptor_are_one_schema_and_print_back_the_same() {
        let order = schema(ORDER);
        let text = order.text();
        let again = schema(&text);
        assert_eq!(again.text(), text, "printing is stable");
        assert_eq!(
            again.file.file_descriptor_proto().message_type,
            order.file.file_descriptor_proto().message_type,
            "{text}"
        );
        let base64 = base64::engine::general_purpose::STANDARD.encode(order.serialized());
        assert_eq!(schema(&base64).text(), text, "the base64 descriptor form");
        assert!(text.contains("map<string, int32> counts = 4;"), "{text}");
        assert!(text.contains("oneof payment {"), "{text}");
        assert!(text.contains("optional double total = 8;"), "{text}");
        assert!(text.contains("reserved 20 to 22;"), "{text}");
    }

    #[test]
    fn bad_schemas_are_refused_with_what_is_wrong() {
        for (bad, says) in [
            ("message {", "not a .proto file"),
            ("syntax = \"proto3\"; message A { Nope b = 1; }", "Nope"),
            (
                "syntax = \"proto3\"; import \"other.proto\"; message A {}",
                "no schema reference names",
            ),
            (
                "syntax = \"proto3\"; enum E { A = 0; }",
                "at least one message",
            ),
        ] {
            let errors = ProtoSchema::parse_text(bad).unwrap_err();
            assert!(errors.join(" ").contains(says), "{bad}: {errors:?}");
        }
        assert!(ProtoSchema::parse(&json!({"type": "record"})).is_err());
    }

    #[test]
    fn values_round_trip_through_the_wire_form() {
        let order = schema(ORDER);
        let value = json!({"id": "7", "note": "hi", "tags": ["a"], "counts": {"x": 2}, "customer": {"email": "a@b"}, "card": "4111", "total": 2.5, "status": "PAID", "at": "2026-01-01T00:00:00Z"});
        let bytes = order.encode(&value).unwrap();
        assert_eq!(bytes[0], 0, "the first message: one zero byte");
        let back = order.decode(&bytes).unwrap();
        for field in [
            "id", "note", "tags", "counts", "customer", "card", "total", "status", "at",
        ] {
            assert_eq!(back[field], value[field], "{field}: {back}");
        }
        assert_eq!(
            order
                .encode(&json!({"id": 1}))
                .map(|b| order.decode(&b).unwrap()["note"].clone()),
            Ok(json!("")),
            "defaults are shown"
        );
        assert!(order
            .encode(&json!({"id": "x"}))
            .unwrap_err()
            .contains("acme.Order"));
        assert!(
            order.encode(&json!({"nope": 1})).is_err(),
            "unknown fields are refused"
        );
        // The second message: indexes [1], as count 1 then index 1, zigzag.
        let mut other = vec![2, 2];
        other.extend(
            DynamicMessage::deserialize(order.message_at(&[1]).unwrap(), &json!({"flag": true}))
                .unwrap()
                .encode_to_vec(),
        );
        assert_eq!(order.decode(&other).unwrap(), json!({"flag": true}));
        assert!(order
            .decode(&[2, 8])
            .unwrap_err()
            .contains("name no message"));
        assert!(order.decode(&[0x80]).is_err());
        assert!(
            order.decode(&[0, 0xff]).is_err(),
            "a payload that is not the message"
        );
    }

    fn problems(old: &str, new: &str) -> Vec<String> {
        reader_accepts(&schema(new), &schema(old))
    }

    #[test]
    fn evolution_follows_the_wire_format() {
        let v1 = "syntax = \"proto3\"; package p; message M { int32 a = 1; string b = 2; N n = 3; message N { int32 x = 1; } }";
        assert!(problems(v1, v1).is_empty());
        // Added and removed fields, and int32 to int64: all read fine.
        assert!(problems(v1, "syntax = \"proto3\"; package p; message M { int64 a = 1; N n = 3; bool c = 4; message N { int32 x = 1; } }").is_empty());
        let broken = problems(v1, "syntax = \"proto3\"; package p; message M { double a = 1; string b = 2; N n = 3; message N { int32 x = 1; } }");
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(
            broken[0].contains("message p.M, field 1 (a): type int32 became double")
                && broken[0].contains("FIELD_SCALAR_KIND_CHANGED"),
            "{broken:?}"
        );
        let kind = problems(v1, "syntax = \"proto3\"; package p; message M { int32 a = 1; N b = 2; N n = 3; message N { int32 x = 1; } }");
        assert!(kind[0].contains("FIELD_KIND_CHANGED"), "{kind:?}");
        let named = problems(v1, "syntax = \"proto3\"; package p; message M { int32 a = 1; string b = 2; O n = 3; message N { int32 x = 1; } message O { int32 x = 1; } }");
        assert!(named[0].contains("FIELD_NAMED_TYPE_CHANGED"), "{named:?}");
        let removed = problems(
            v1,
            "syntax = \"proto3\"; package p; message M { int32 a = 1; string b = 2; }",
        );
        assert!(
            removed
                .iter()
                .any(|p| p.contains("message p.M.N was removed (MESSAGE_REMOVED)")),
            "{removed:?}"
        );
        let package = problems(v1, "syntax = \"proto3\"; package q; message M { int32 a = 1; string b = 2; N n = 3; message N { int32 x = 1; } }");
        assert_eq!(package.len(), 1, "{package:?}");
        assert!(package[0].contains("PACKAGE_CHANGED"));
        let oneof = "syntax = \"proto3\"; message M { int32 a = 1; oneof o { string b = 2; } int32 c = 3; }";
        let moved = problems(oneof, "syntax = \"proto3\"; message M { int32 a = 1; oneof o { string b = 2; int32 c = 3; } }");
        assert!(
            moved[0].contains("FIELD_MOVED_TO_EXISTING_ONEOF"),
            "{moved:?}"
        );
        let both = problems(oneof, "syntax = \"proto3\"; message M { oneof o { string b = 2; } oneof n { int32 a = 1; int32 c = 3; } }");
        assert!(
            both[0].contains("MULTIPLE_FIELDS_MOVED_TO_ONEOF"),
            "{both:?}"
        );
        let proto2 = "syntax = \"proto2\"; message M { required int32 a = 1; }";
        assert!(problems(
            proto2,
            "syntax = \"proto2\"; message M { required int32 a = 1; required int32 b = 2; }"
        )[0]
        .contains("REQUIRED_FIELD_ADDED"));
        assert!(problems(
            proto2,
            "syntax = \"proto2\"; message M { optional int32 b = 2; }"
        )[0]
        .contains("REQUIRED_FIELD_REMOVED"));
    }

    #[test]
    fn terms_drop_or_stringify_the_first_message_s_fields() {
        let order = schema(ORDER);
        let dropped = order.reshaped(&["card".into()], false).unwrap();
        let dropped = dropped.reshaped(&["iban".into()], false).unwrap();
        assert!(!dropped.text().contains("oneof"), "{}", dropped.text());
        let masked = order.reshaped(&["customer".into()], true).unwrap();
        assert!(
            masked.text().contains("  string customer = 5;"),
            "{}",
            masked.text()
        );
        let tags = order.reshaped(&["tags".into()], true).unwrap();
        assert!(
            tags.text().contains("  string tags = 3;"),
            "{}",
            tags.text()
        );
        let value = masked
            .encode(&json!({"id": "1", "customer": "****"}))
            .unwrap();
        assert_eq!(masked.decode(&value).unwrap()["customer"], "****");
        assert_eq!(
            order.reshaped(&["nope".into()], false).unwrap().text(),
            order.text()
        );
        assert!(order
            .reshaped(&["customer".into(), "email".into()], true)
            .is_err());
    }

    const SCALARS: [&str; 8] = [
        "int32", "int64", "string", "bytes", "double", "bool", "sint64", "fixed32",
    ];

    /// Proto3 messages over a few field names and scalar types, numbered in order.
    fn message() -> impl Strategy<Value = Vec<(usize, bool)>> {
        proptest::collection::vec((0..SCALARS.len(), any::<bool>()), 1..6)
    }

    fn text(fields: &[(usize, bool)], extra: &str) -> String {
        let mut body = String::new();
        for (i, (t, repeated)) in fields.iter().enumerate() {
            let label = if *repeated { "repeated " } else { "" };
            body.push_str(&format!("{label}{} f{i} = {};\n", SCALARS[*t], i + 1));
        }
        format!("syntax = \"proto3\";\npackage p;\nmessage M {{\n{body}{extra}}}\n")
    }

    proptest! {
        #[test]
        fn any_text_or_bytes_is_refused_or_read_never_a_panic(
            text in "(syntax|message|M|\\{|\\}|=|;|int64|repeated|map<|>|oneof|[a-z]|[0-9]| |\"|\n)*",
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = ProtoSchema::parse_text(&text);
            let noise = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let _ = ProtoSchema::parse_text(&noise);
            let order = schema(ORDER);
            let _ = order.decode(&bytes);
            let mut framed = vec![0];
            framed.extend(&bytes);
            let _ = order.decode(&framed);
        }

        #[test]
        fn every_schema_reads_itself_and_prints_back_the_same(fields in message()) {
            let one = schema(&text(&fields, ""));
            prop_assert!(reader_accepts(&one, &one).is_empty());
            let printed = one.text();
            prop_assert_eq!(schema(&printed).text(), printed);
        }

        #[test]
        fn adding_a_field_is_compatible_both_ways(fields in message(), t in 0..SCALARS.len()) {
            let old = schema(&text(&fields, ""));
            let new = schema(&text(&fields, &format!("{} added = 99;\n", SCALARS[t])));
            prop_assert!(reader_accepts(&new, &old).is_empty());
            prop_assert!(reader_accepts(&old, &new).is_empty());
        }

        #[test]
        fn a_change_of_wire_type_breaks_both_ways(fields in message(), at in 0usize..6, t in 0..SCALARS.len()) {
            let at = at % fields.len();
            let mut changed = fields.clone();
            changed[at].0 = t;
            let (old, new) = (schema(&text(&fields, "")), schema(&text(&changed, "")));
            let breaks = scalar_group(&old.first_message().fields().nth(at).unwrap().kind())
                != scalar_group(&new.first_message().fields().nth(at).unwrap().kind());
            let backward = reader_accepts(&new, &old);
            prop_assert_eq!(!backward.is_empty(), breaks, "{:?}", backward);
            prop_assert_eq!(!reader_accepts(&old, &new).is_empty(), breaks);
            if breaks {
                let field = format!("field {} (f{at})", at + 1);
                prop_assert!(backward[0].contains(&field));
            }
        }
    }
}
