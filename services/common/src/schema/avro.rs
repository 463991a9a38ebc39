//! Avro schemas: parsing, and compatibility by Avro's schema-resolution
//! rules (a reader schema reading data written with a writer schema).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Primitive(&'static str),
    Record {
        name: String,
        aliases: Vec<String>,
        fields: Vec<Field>,
    },
    Enum {
        name: String,
        aliases: Vec<String>,
        symbols: Vec<String>,
        default: Option<String>,
    },
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Vec<Node>),
    Fixed {
        name: String,
        aliases: Vec<String>,
        size: u64,
    },
    /// A reference to a named type defined elsewhere in the schema.
    Named(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub aliases: Vec<String>,
    pub schema: Node,
    pub has_default: bool,
    /// The default, in Avro's JSON encoding (the first branch's type for a
    /// union), written when a value leaves the field out.
    pub default: Option<Value>,
}

/// A parsed Avro schema and its named types, by full name.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    pub root: Node,
    names: HashMap<String, Node>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` is one of Avro's primitive types.
pub fn is_primitive(name: &str) -> bool {
    PRIMITIVES.contains(&name)
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() && !name.contains('.') => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

struct Parser {
    names: HashMap<String, Node>,
    problems: Vec<String>,
}

impl Parser {
    fn problem(&mut self, path: &str, what: impl Into<String>) {
        let at = if path.is_empty() { "/" } else { path };
        self.problems.push(format!("{at}: {}", what.into()));
    }

    fn aliases(
        &mut self,
        object: &serde_json::Map<String, Value>,
        namespace: Option<&str>,
    ) -> Vec<String> {
        object
            .get("aliases")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|n| full_name(n, namespace))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Declares a named type; returns its full name and namespace.
    fn declare(
        &mut self,
        object: &serde_json::Map<String, Value>,
        namespace: Option<&str>,
        path: &str,
    ) -> Option<(String, Option<String>)> {
        let Some(name) = object.get("name").and_then(Value::as_str) else {
            self.problem(path, "a named type needs a \"name\"");
            return None;
        };
        let namespace = object
            .get("namespace")
            .and_then(Value::as_str)
            .or(namespace)
            .map(str::to_string);
        let short = name.rsplit('.').next().unwrap_or(name);
        if !valid_name(short) {
            self.problem(path, format!("{name:?} is not a valid Avro name"));
        }
        let full = full_name(name, namespace.as_deref());
        if self.names.contains_key(&full) {
            self.problem(path, format!("{full:?} is defined twice"));
        }
        // Placeholder so recursive references resolve while parsing.
        self.names.insert(full.clone(), Node::Named(full.clone()));
        let namespace = full
            .rsplit_once('.')
            .map(|(ns, _)| ns.to_string())
            .or(namespace);
        Some((full, namespace))
    }

    fn parse(&mut self, value: &Value, namespace: Option<&str>, path: &str) -> Node {
        match value {
            Value::String(name) => {
                if let Some(p) = PRIMITIVES.iter().find(|p| **p == name) {
                    return Node::Primitive(p);
                }
                let full = full_name(name, namespace);
                for candidate in [full, name.clone()] {
                    if self.names.contains_key(&candidate) {
                        return Node::Named(candidate);
                    }
                }
                self.problem(path, format!("unknown type {name:?}"));
                Node::Primitive("null")
            }
            Value::Array(branches) => {
                let mut nodes = Vec::with_capacity(branches.len());
                for (i, branch) in branches.iter().enumerate() {
                    let node = self.parse(branch, namespace, &format!("{path}/{i}"));
                    if matches!(node, Node::Union(_)) {
                        self.problem(&format!("{path}/{i}"), "a union may not contain a union");
                    }
                    nodes.push(node);
                }
                if nodes.is_empty() {
                    self.problem(path, "a union needs at least one branch");
                }
                Node::Union(nodes)
            }
            Value::Object(object) => self.parse_object(object, namespace, path),
            other => {
                self.problem(path, format!("{other} is not an Avro schema"));
                Node::Primitive("null")
            }
        }
    }

    fn parse_object(
        &mut self,
        object: &serde_json::Map<String, Value>,
        namespace: Option<&str>,
        path: &str,
    ) -> Node {
        let Some(kind) = object.get("type") else {
            self.problem(path, "missing \"type\"");
            return Node::Primitive("null");
        };
        let Some(kind) = kind.as_str() else {
            // {"type": [...]} or {"type": {...}}: a schema nested as the type.
            return self.parse(kind, namespace, &format!("{path}/type"));
        };
        match kind {
            "record" | "error" => {
                let Some((name, ns)) = self.declare(object, namespace, path) else {
                    return Node::Primitive("null");
                };
                let aliases = self.aliases(object, ns.as_deref());
                let mut fields = Vec::new();
                let mut seen = HashSet::new();
                match object.get("fields").and_then(Value::as_array) {
                    None => self.problem(path, "a record needs a \"fields\" array"),
                    Some(list) => {
                        for (i, field) in list.iter().enumerate() {
                            let at = format!("{path}/fields/{i}");
                            let Some(field) = field.as_object() else {
                                self.problem(&at, "a field must be an object");
                                continue;
                            };
                            let Some(field_name) = field.get("name").and_then(Value::as_str) else {
                                self.problem(&at, "a field needs a \"name\"");
                                continue;
                            };
                            if !valid_name(field_name) {
                                self.problem(
                                    &at,
                                    format!("{field_name:?} is not a valid field name"),
                                );
                            }
                            if !seen.insert(field_name.to_string()) {
                                self.problem(&at, format!("field {field_name:?} appears twice"));
                            }
                            let Some(field_type) = field.get("type") else {
                                self.problem(&at, format!("field {field_name:?} needs a \"type\""));
                                continue;
                            };
                            let schema =
                                self.parse(field_type, ns.as_deref(), &format!("{at}/type"));
                            fields.push(Field {
                                name: field_name.to_string(),
                                aliases: field
                                    .get("aliases")
                                    .and_then(Value::as_array)
                                    .map(|a| {
                                        a.iter()
                                            .filter_map(Value::as_str)
                                            .map(str::to_string)
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                                schema,
                                has_default: field.contains_key("default"),
                                default: field.get("default").cloned(),
                            });
                        }
                    }
                }
                let node = Node::Record {
                    name: name.clone(),
                    aliases,
                    fields,
                };
                self.names.insert(name, node.clone());
                node
            }
            "enum" => {
                let Some((name, ns)) = self.declare(object, namespace, path) else {
                    return Node::Primitive("null");
                };
                let aliases = self.aliases(object, ns.as_deref());
                let symbols: Vec<String> = match object.get("symbols").and_then(Value::as_array) {
                    Some(s) if s.iter().all(|v| v.as_str().is_some_and(valid_name)) => s
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    _ => {
                        self.problem(path, "an enum needs a \"symbols\" array of valid names");
                        vec![]
                    }
                };
                if symbols.iter().collect::<HashSet<_>>().len() != symbols.len() {
                    self.problem(path, "enum symbols must be unique");
                }
                let default = object
                    .get("default")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let Some(d) = &default {
                    if !symbols.contains(d) {
                        self.problem(
                            path,
                            format!("enum default {d:?} is not one of its symbols"),
                        );
                    }
                }
                let node = Node::Enum {
                    name: name.clone(),
                    aliases,
                    symbols,
                    default,
                };
                self.names.insert(name, node.clone());
                node
            }
            "fixed" => {
                let Some((name, ns)) = self.declare(object, namespace, path) else {
                    return Node::Primitive("null");
                };
                let aliases = self.aliases(object, ns.as_deref());
                let size = object
                    .get("size")
                    .and_then(Value::as_u64)
                    .unwrap_or_else(|| {
                        self.problem(path, "a fixed type needs a non-negative integer \"size\"");
                        0
                    });
                let node = Node::Fixed {
                    name: name.clone(),
                    aliases,
                    size,
                };
                self.names.insert(name, node.clone());
                node
            }
            "array" => match object.get("items") {
                Some(items) => Node::Array(Box::new(self.parse(
                    items,
                    namespace,
                    &format!("{path}/items"),
                ))),
                None => {
                    self.problem(path, "an array needs \"items\"");
                    Node::Primitive("null")
                }
            },
            "map" => match object.get("values") {
                Some(values) => Node::Map(Box::new(self.parse(
                    values,
                    namespace,
                    &format!("{path}/values"),
                ))),
                None => {
                    self.problem(path, "a map needs \"values\"");
                    Node::Primitive("null")
                }
            },
            // A primitive in object form, possibly with a logical type.
            other => self.parse(
                &Value::String(other.to_string()),
                namespace,
                &format!("{path}/type"),
            ),
        }
    }
}

impl AvroSchema {
    /// Parses an Avro schema, reporting every problem with its JSON pointer.
    pub fn parse(value: &Value) -> Result<AvroSchema, Vec<String>> {
        AvroSchema::parse_with(super::Source::alone(value))
    }

    /// Parses an Avro schema after the schemas it refers to, whose named
    /// types it may use; a problem in one of those names it.
    pub fn parse_with(source: super::Source<'_>) -> Result<AvroSchema, Vec<String>> {
        let mut parser = Parser {
            names: HashMap::new(),
            problems: Vec::new(),
        };
        for dependency in source.dependencies {
            let at = format!("reference {:?}", dependency.reference.name);
            parser.parse(&dependency.schema, None, &at);
        }
        let root = parser.parse(source.schema, None, "");
        if parser.problems.is_empty() {
            Ok(AvroSchema {
                root,
                names: parser.names,
            })
        } else {
            Err(parser.problems)
        }
    }

    pub(super) fn resolve<'a>(&'a self, node: &'a Node) -> &'a Node {
        match node {
            Node::Named(name) => self.names.get(name).unwrap_or(node),
            other => other,
        }
    }
}

/// The full name an Avro schema defines at its top (a named type's), if
/// it defines one.
fn defined_name(schema: &Value) -> Option<String> {
    let object = schema.as_object()?;
    let name = object.get("name")?.as_str()?;
    Some(full_name(
        name,
        object.get("namespace").and_then(Value::as_str),
    ))
}

/// `source` with each referenced named type defined at its first use, so
/// that it reads alone (see [`super::self_contained`]).
pub(super) fn self_contained(source: super::Source<'_>) -> Value {
    struct Inliner<'a> {
        dependencies: &'a [super::Dependency],
        defined: HashSet<String>,
    }
    impl Inliner<'_> {
        /// A schema node: a type name, a union, or a type object.
        fn node(&mut self, node: &Value, namespace: Option<&str>) -> Value {
            match node {
                Value::String(name) if !is_primitive(name) => {
                    let full = full_name(name, namespace);
                    let found = self.dependencies.iter().find(|d| {
                        d.reference.name == full
                            || defined_name(&d.schema).as_deref() == Some(&full)
                    });
                    match found {
                        Some(d) if self.defined.insert(full) => self.node(&d.schema, None),
                        _ => node.clone(),
                    }
                }
                Value::Array(branches) => {
                    Value::Array(branches.iter().map(|b| self.node(b, namespace)).collect())
                }
                Value::Object(object) => {
                    let mut out = object.clone();
                    let defined = defined_name(node);
                    let inner_ns = object
                        .get("namespace")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .or_else(|| {
                            defined
                                .as_ref()
                                .and_then(|f| f.rsplit_once('.').map(|(ns, _)| ns.to_string()))
                        })
                        .or(namespace.map(str::to_string));
                    if let Some(full) = defined {
                        self.defined.insert(full);
                    }
                    let ns = inner_ns.as_deref();
                    match object.get("type") {
                        Some(Value::String(kind)) if kind == "record" || kind == "error" => {
                            if let Some(Value::Array(fields)) = object.get("fields") {
                                let fields = fields
                                    .iter()
                                    .map(|f| {
                                        let mut f = f.clone();
                                        if let Some(t) = f.get("type").cloned() {
                                            f["type"] = self.node(&t, ns);
                                        }
                                        f
                                    })
                                    .collect();
                                out.insert("fields".into(), Value::Array(fields));
                            }
                        }
                        Some(Value::String(kind)) if kind == "array" => {
                            if let Some(items) = object.get("items") {
                                out.insert("items".into(), self.node(items, ns));
                            }
                        }
                        Some(Value::String(kind)) if kind == "map" => {
                            if let Some(values) = object.get("values") {
                                out.insert("values".into(), self.node(values, ns));
                            }
                        }
                        Some(inner @ (Value::Object(_) | Value::Array(_) | Value::String(_))) => {
                            out.insert("type".into(), self.node(inner, namespace));
                        }
                        _ => {}
                    }
                    Value::Object(out)
                }
                other => other.clone(),
            }
        }
    }
    Inliner {
        dependencies: source.dependencies,
        defined: HashSet::new(),
    }
    .node(source.schema, None)
}

/// Why data written with `writer` may not be readable with `reader`.
pub fn reader_accepts(reader: &AvroSchema, writer: &AvroSchema) -> Vec<String> {
    let mut check = Check {
        reader,
        writer,
        seen: HashSet::new(),
        problems: Vec::new(),
    };
    check.accepts(&reader.root, &writer.root, "");
    check.problems
}

struct Check<'a> {
    reader: &'a AvroSchema,
    writer: &'a AvroSchema,
    /// Named pairs already being compared: recursive types end here.
    seen: HashSet<(String, String)>,
    problems: Vec<String>,
}

fn kind(node: &Node) -> String {
    match node {
        Node::Primitive(p) => (*p).to_string(),
        Node::Record { name, .. } => format!("record {name}"),
        Node::Enum { name, .. } => format!("enum {name}"),
        Node::Fixed { name, .. } => format!("fixed {name}"),
        Node::Array(_) => "array".into(),
        Node::Map(_) => "map".into(),
        Node::Union(_) => "union".into(),
        Node::Named(name) => name.clone(),
    }
}

fn names_match(reader: &str, aliases: &[String], writer: &str) -> bool {
    let short = |n: &str| n.rsplit('.').next().unwrap_or(n).to_string();
    reader == writer
        || short(reader) == short(writer)
        || aliases
            .iter()
            .any(|a| a == writer || short(a) == short(writer))
}

fn promotes(writer: &str, reader: &str) -> bool {
    writer == reader
        || matches!(
            (writer, reader),
            ("int", "long" | "float" | "double")
                | ("long", "float" | "double")
                | ("float", "double")
                | ("string", "bytes")
                | ("bytes", "string")
        )
}

impl Check<'_> {
    /// Whether `reader` can read everything `writer` writes, without
    /// recording problems (to pick a union branch).
    fn fits(&mut self, reader: &Node, writer: &Node) -> bool {
        let before = self.problems.len();
        self.accepts(reader, writer, "");
        let fits = self.problems.len() == before;
        self.problems.truncate(before);
        fits
    }

    fn accepts(&mut self, reader: &Node, writer: &Node, path: &str) {
        let at = if path.is_empty() { "/" } else { path };
        let reader = self.reader.resolve(reader).clone();
        let writer = self.writer.resolve(writer).clone();
        match (&reader, &writer) {
            (_, Node::Union(branches)) => {
                for (i, branch) in branches.iter().enumerate() {
                    let fits = match &reader {
                        Node::Union(options) => options.iter().any(|o| self.fits(o, branch)),
                        single => self.fits(single, branch),
                    };
                    if !fits {
                        self.problems.push(format!(
                            "{at}: values of type {} (union branch {i}) can no longer be read",
                            kind(self.writer.resolve(branch))
                        ));
                    }
                }
            }
            (Node::Union(options), single) => {
                if !options.iter().any(|o| self.fits(o, single)) {
                    self.problems.push(format!(
                        "{at}: no branch of the union reads {}",
                        kind(single)
                    ));
                }
            }
            (Node::Primitive(r), Node::Primitive(w)) => {
                if !promotes(w, r) {
                    self.problems
                        .push(format!("{at}: type changed from {w} to {r}"));
                }
            }
            (
                Node::Record {
                    name: rn,
                    aliases,
                    fields: reader_fields,
                },
                Node::Record {
                    name: wn,
                    fields: writer_fields,
                    ..
                },
            ) => {
                if !names_match(rn, aliases, wn) {
                    self.problems.push(format!("{at}: record {wn} became {rn}"));
                    return;
                }
                if !self.seen.insert((rn.clone(), wn.clone())) {
                    return;
                }
                for field in reader_fields {
                    let found = writer_fields
                        .iter()
                        .find(|w| w.name == field.name || field.aliases.contains(&w.name));
                    match found {
                        Some(w) => {
                            let (r_schema, w_schema) = (field.schema.clone(), w.schema.clone());
                            self.accepts(
                                &r_schema,
                                &w_schema,
                                &format!("{path}/fields/{}", field.name),
                            );
                        }
                        None if field.has_default => {}
                        None => self.problems.push(format!(
                            "{path}/fields/{}: field '{}' was added without a default",
                            field.name, field.name
                        )),
                    }
                }
            }
            (
                Node::Enum {
                    name: rn,
                    aliases,
                    symbols: rs,
                    default,
                },
                Node::Enum {
                    name: wn,
                    symbols: ws,
                    ..
                },
            ) => {
                if !names_match(rn, aliases, wn) {
                    self.problems.push(format!("{at}: enum {wn} became {rn}"));
                } else if default.is_none() {
                    let missing: Vec<_> = ws.iter().filter(|s| !rs.contains(s)).cloned().collect();
                    if !missing.is_empty() {
                        self.problems.push(format!(
                            "{at}: enum symbols {} were removed and there is no default",
                            missing.join(", ")
                        ));
                    }
                }
            }
            (Node::Array(r), Node::Array(w)) => {
                let (r, w) = ((**r).clone(), (**w).clone());
                self.accepts(&r, &w, &format!("{path}/items"));
            }
            (Node::Map(r), Node::Map(w)) => {
                let (r, w) = ((**r).clone(), (**w).clone());
                self.accepts(&r, &w, &format!("{path}/values"));
            }
            (
                Node::Fixed {
                    name: rn,
                    aliases,
                    size: rs,
                },
                Node::Fixed {
                    name: wn, size: ws, ..
                },
            ) => {
                if !names_match(rn, aliases, wn) || rs != ws {
                    self.problems
                        .push(format!("{at}: fixed {wn}({ws}) became {rn}({rs})"));
                }
            }
            (r, w) => self.problems.push(format!(
                "{at}: type changed from {} to {}",
                kind(w),
                kind(r)
            )),
        }
    }
}
