use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

fn problems(mode: Compatibility, format: SchemaFormat, old: Value, new: Value) -> Vec<String> {
    incompatibilities(mode, format, Source::alone(&old), Source::alone(&new))
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

#[test]
fn json_schema_evolution_follows_the_modes() {
    use Compatibility::*;
    use SchemaFormat::JsonSchema as J;
    let v1 = object(
        json!({"id": {"type": "integer"}, "note": {"type": "string"}}),
        &["id"],
    );

    // An optional field: fine both ways.
    let optional = object(
        json!({"id": {"type": "integer"}, "note": {"type": "string"}, "email": {"type": "string"}}),
        &["id"],
    );
    assert_eq!(
        problems(Full, J, v1.clone(), optional),
        Vec::<String>::new()
    );

    // A new required field: old data lacks it.
    let required = object(
        json!({"id": {"type": "integer"}, "note": {"type": "string"}, "email": {"type": "string"}}),
        &["id", "email"],
    );
    let broken = problems(Backward, J, v1.clone(), required.clone());
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(
        broken[0].contains("/properties/email: 'email' is now required"),
        "{broken:?}"
    );
    assert!(problems(Forward, J, v1.clone(), required).is_empty());

    // Widening integer to number: new readers read old data, not the reverse.
    let widened = object(
        json!({"id": {"type": "number"}, "note": {"type": "string"}}),
        &["id"],
    );
    assert!(problems(Backward, J, v1.clone(), widened.clone()).is_empty());
    let forward = problems(Forward, J, v1.clone(), widened);
    assert!(
        forward[0].contains("/properties/id: type number is no longer allowed"),
        "{forward:?}"
    );

    // Tightening a bound and dropping an enum value.
    let old = object(
        json!({"qty": {"type": "integer", "maximum": 100}, "s": {"enum": ["a", "b"]}}),
        &[],
    );
    let new = object(
        json!({"qty": {"type": "integer", "maximum": 10}, "s": {"enum": ["a"]}}),
        &[],
    );
    let broken = problems(Backward, J, old, new);
    assert!(
        broken
            .iter()
            .any(|p| p.contains("/properties/qty: maximum fell from 100 to 10")),
        "{broken:?}"
    );
    assert!(
        broken
            .iter()
            .any(|p| p.contains("/properties/s: values \"b\" are no longer allowed")),
        "{broken:?}"
    );

    // Closing the object to a field old data has.
    let closed = json!({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"], "additionalProperties": false});
    let broken = problems(Backward, J, v1.clone(), closed);
    assert!(
        broken
            .iter()
            .any(|p| p.contains("'note' is no longer allowed")),
        "{broken:?}"
    );

    // What cannot be judged must not change.
    let opaque = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
    let broken = problems(Backward, J, json!({"anyOf": [{"type": "string"}]}), opaque);
    assert!(broken[0].contains("'anyOf' changed"), "{broken:?}");

    assert!(problems(None, J, v1, json!({"type": "string"})).is_empty());
}

#[test]
fn json_schema_structure_is_checked_with_pointers() {
    let errors = check_schema(
        SchemaFormat::JsonSchema,
        Source::alone(&json!({"type": "object", "properties": {"a": {"type": "text"}, "b/c": {"minLength": "x"}}, "required": "a"})),
    )
    .unwrap_err();
    assert!(
        errors.contains(&"/properties/a/type: \"text\" is not a JSON Schema type".to_string()),
        "{errors:?}"
    );
    assert!(
        errors.contains(&"/properties/b~1c/minLength: must be a number".to_string()),
        "{errors:?}"
    );
    assert!(
        errors.contains(&"/required: must be an array of property names".to_string()),
        "{errors:?}"
    );
    assert!(check_schema(SchemaFormat::JsonSchema, Source::alone(&json!([1]))).is_err());
}

fn record(fields: Value) -> Value {
    json!({"type": "record", "name": "Order", "namespace": "shop", "fields": fields})
}

#[test]
fn avro_evolution_follows_schema_resolution() {
    use Compatibility::*;
    use SchemaFormat::Avro as A;
    let v1 = record(
        json!([{"name": "id", "type": "int"}, {"name": "note", "type": ["null", "string"], "default": null}]),
    );

    let with_default = record(json!([
        {"name": "id", "type": "int"},
        {"name": "note", "type": ["null", "string"], "default": null},
        {"name": "channel", "type": "string", "default": "web"}
    ]));
    assert_eq!(
        problems(Full, A, v1.clone(), with_default),
        Vec::<String>::new()
    );

    let without_default = record(json!([
        {"name": "id", "type": "int"},
        {"name": "note", "type": ["null", "string"], "default": null},
        {"name": "channel", "type": "string"}
    ]));
    let broken = problems(Backward, A, v1.clone(), without_default.clone());
    assert_eq!(broken, ["BACKWARD (new schema reading old data): /fields/channel: field 'channel' was added without a default"]);
    assert!(problems(Forward, A, v1.clone(), without_default).is_empty());

    // Promotion int -> long reads old data; old readers cannot read longs.
    let promoted = record(
        json!([{"name": "id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": null}]),
    );
    assert!(problems(Backward, A, v1.clone(), promoted.clone()).is_empty());
    let forward = problems(Forward, A, v1.clone(), promoted);
    assert!(
        forward[0].contains("/fields/id: type changed from long to int"),
        "{forward:?}"
    );

    // Removing an enum symbol without a default breaks new readers of old data.
    let e = |symbols: Value| json!({"type": "enum", "name": "Status", "symbols": symbols});
    let broken = problems(
        Backward,
        A,
        e(json!(["NEW", "PAID", "SHIPPED"])),
        e(json!(["NEW", "PAID"])),
    );
    assert!(
        broken[0].contains("enum symbols SHIPPED were removed"),
        "{broken:?}"
    );
    let with_default =
        json!({"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"], "default": "NEW"});
    assert!(problems(
        Backward,
        A,
        e(json!(["NEW", "PAID", "SHIPPED"])),
        with_default
    )
    .is_empty());

    // A union losing a branch.
    let broken = problems(
        Backward,
        A,
        json!(["null", "string", "int"]),
        json!(["null", "string"]),
    );
    assert!(
        broken[0].contains("values of type int (union branch 2) can no longer be read"),
        "{broken:?}"
    );

    // Renaming a record is a break unless the old name is an alias.
    let renamed = json!({"type": "record", "name": "Purchase", "namespace": "shop", "fields": [{"name": "id", "type": "int"}]});
    assert!(!problems(
        Backward,
        A,
        record(json!([{"name": "id", "type": "int"}])),
        renamed
    )
    .is_empty());
    let aliased = json!({"type": "record", "name": "Purchase", "namespace": "shop", "aliases": ["Order"], "fields": [{"name": "id", "type": "int"}]});
    assert!(problems(
        Backward,
        A,
        record(json!([{"name": "id", "type": "int"}])),
        aliased
    )
    .is_empty());
}

#[test]
fn recursive_avro_types_are_compatible_with_themselves() {
    let list = json!({"type": "record", "name": "Node", "fields": [
        {"name": "value", "type": "long"},
        {"name": "next", "type": ["null", "Node"], "default": null}
    ]});
    AvroSchema::parse(&list).unwrap();
    assert!(problems(Compatibility::Full, SchemaFormat::Avro, list.clone(), list).is_empty());
}

#[test]
fn invalid_avro_is_reported_with_pointers() {
    let errors = AvroSchema::parse(&json!({"type": "record", "name": "9bad", "fields": [
        {"name": "a", "type": "strnig"},
        {"name": "a", "type": "int"},
        {"type": "int"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "X"], "default": "Y"}}
    ]}))
    .unwrap_err();
    for expected in [
        "/: \"9bad\" is not a valid Avro name",
        "/fields/0/type: unknown type \"strnig\"",
        "/fields/1: field \"a\" appears twice",
        "/fields/2: a field needs a \"name\"",
        "/fields/3/type: enum symbols must be unique",
        "/fields/3/type: enum default \"Y\" is not one of its symbols",
    ] {
        assert!(
            errors.iter().any(|e| e == expected),
            "missing {expected:?} in {errors:#?}"
        );
    }
}

const FIELD_NAMES: [&str; 6] = ["id", "name", "email", "total", "country", "note"];
const JSON_TYPES: [&str; 5] = ["string", "integer", "number", "boolean", "null"];
const AVRO_TYPES: [&str; 6] = ["string", "int", "long", "double", "boolean", "bytes"];

/// Object schemas over a few field names, types and required sets.
fn json_schema() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(
        0..FIELD_NAMES.len(),
        (0..JSON_TYPES.len(), any::<bool>()),
        0..5,
    )
    .prop_map(|fields| {
        let properties: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(f, (t, _))| (FIELD_NAMES[*f].to_string(), json!({"type": JSON_TYPES[*t]})))
            .collect();
        let required: Vec<&str> = fields
            .iter()
            .filter(|(_, (_, r))| *r)
            .map(|(f, _)| FIELD_NAMES[*f])
            .collect();
        json!({"type": "object", "properties": properties, "required": required})
    })
}

fn avro_record() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(0..FIELD_NAMES.len(), (0..AVRO_TYPES.len(), any::<bool>()), 1..5).prop_map(
        |fields| {
            let fields: Vec<Value> = fields
                .iter()
                .map(|(f, (t, optional))| {
                    if *optional {
                        json!({"name": FIELD_NAMES[*f], "type": ["null", AVRO_TYPES[*t]], "default": null})
                    } else {
                        json!({"name": FIELD_NAMES[*f], "type": AVRO_TYPES[*t]})
                    }
                })
                .collect();
            json!({"type": "record", "name": "R", "fields": fields})
        },
    )
}

proptest! {
    #[test]
    fn every_json_schema_is_fully_compatible_with_itself(schema in json_schema()) {
        check_schema(SchemaFormat::JsonSchema, Source::alone(&schema)).unwrap();
        prop_assert!(problems(Compatibility::Full, SchemaFormat::JsonSchema, schema.clone(), schema).is_empty());
    }

    #[test]
    fn adding_an_optional_json_property_keeps_full_compatibility(schema in json_schema(), t in 0..JSON_TYPES.len()) {
        let mut new = schema.clone();
        new["properties"]["added_field"] = json!({"type": JSON_TYPES[t]});
        prop_assert!(problems(Compatibility::Full, SchemaFormat::JsonSchema, schema, new).is_empty());
    }

    #[test]
    fn adding_a_required_json_property_breaks_backward_only(schema in json_schema(), t in 0..JSON_TYPES.len()) {
        let mut new = schema.clone();
        new["properties"]["added_field"] = json!({"type": JSON_TYPES[t]});
        new["required"].as_array_mut().unwrap().push(json!("added_field"));
        let backward = problems(Compatibility::Backward, SchemaFormat::JsonSchema, schema.clone(), new.clone());
        prop_assert_eq!(backward.len(), 1);
        prop_assert!(backward[0].contains("added_field"));
        prop_assert!(problems(Compatibility::Forward, SchemaFormat::JsonSchema, schema, new).is_empty());
    }

    #[test]
    fn avro_records_evolve_by_defaults(schema in avro_record(), t in 0..AVRO_TYPES.len()) {
        AvroSchema::parse(&schema).unwrap();
        prop_assert!(problems(Compatibility::Full, SchemaFormat::Avro, schema.clone(), schema.clone()).is_empty());
        let mut with_default = schema.clone();
        with_default["fields"].as_array_mut().unwrap().push(json!({"name": "added", "type": ["null", AVRO_TYPES[t]], "default": null}));
        prop_assert!(problems(Compatibility::Full, SchemaFormat::Avro, schema.clone(), with_default).is_empty());
        let mut without = schema.clone();
        without["fields"].as_array_mut().unwrap().push(json!({"name": "added", "type": AVRO_TYPES[t]}));
        let backward = problems(Compatibility::Backward, SchemaFormat::Avro, schema.clone(), without.clone());
        prop_assert_eq!(backward.len(), 1);
        prop_assert!(backward[0].contains("field 'added' was added without a default"));
        prop_assert!(problems(Compatibility::Forward, SchemaFormat::Avro, schema, without).is_empty());
    }
}

fn dependency(name: &str, version: u32, schema: Value) -> Dependency {
    Dependency {
        reference: Reference {
            name: name.into(),
            stream: "acme.addresses".into(),
            part: RecordPart::Value,
            version,
        },
        schema,
    }
}

#[test]
fn an_avro_schema_uses_the_named_types_of_the_schemas_it_refers_to() {
    let address = |fields: Value| json!({"type": "record", "name": "Address", "namespace": "acme", "fields": fields});
    let v1 = [dependency(
        "acme.Address",
        1,
        address(json!([{"name": "city", "type": "string"}])),
    )];
    let order = json!({"type": "record", "name": "Order", "fields": [
        {"name": "ship_to", "type": "acme.Address"},
        {"name": "bill_to", "type": ["null", "acme.Address"], "default": null},
    ]});
    let order_source = Source {
        schema: &order,
        dependencies: &v1,
    };
    assert!(check_schema(SchemaFormat::Avro, Source::alone(&order)).is_err());
    check_schema(SchemaFormat::Avro, order_source).unwrap();
    let codec = AvroSchema::parse_with(order_source).unwrap();
    let value = json!({"ship_to": {"city": "Lyon"}, "bill_to": {"city": "Nantes"}});
    let bytes = avro_binary::encode(&codec, &value).unwrap();
    assert_eq!(avro_binary::decode_plain(&codec, &bytes).unwrap(), value);

    // The referenced type changing in a way old readers cannot follow is
    // the referring schema's change too.
    // Written as one document, it reads alone, and values are the same.
    let alone = self_contained(SchemaFormat::Avro, order_source);
    let alone = AvroSchema::parse(&alone).unwrap();
    assert_eq!(avro_binary::decode_plain(&alone, &bytes).unwrap(), value);
    let v2 = [dependency(
        "acme.Address",
        2,
        address(json!([{"name": "city", "type": "long"}])),
    )];
    let problems = incompatibilities(
        Compatibility::Backward,
        SchemaFormat::Avro,
        order_source,
        Source {
            schema: &order,
            dependencies: &v2,
        },
    );
    assert!(problems.iter().any(|p| p.contains("city")), "{problems:?}");
}

#[test]
fn a_json_schema_ref_to_a_dependency_is_validated_and_compared_through() {
    let address = |city: &str| json!({"type": "object", "properties": {"city": {"type": city}}, "required": ["city"]});
    let order = json!({"type": "object", "properties": {"ship_to": {"$ref": "address.json"}}});
    let v1 = [dependency("address.json", 1, address("string"))];
    let v2 = [dependency("address.json", 2, address("integer"))];
    let problems = incompatibilities(
        Compatibility::Full,
        SchemaFormat::JsonSchema,
        Source {
            schema: &order,
            dependencies: &v1,
        },
        Source {
            schema: &order,
            dependencies: &v2,
        },
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("/properties/ship_to/properties/city")),
        "{problems:?}"
    );
    assert!(incompatibilities(
        Compatibility::Full,
        SchemaFormat::JsonSchema,
        Source {
            schema: &order,
            dependencies: &v1
        },
        Source {
            schema: &order,
            dependencies: &v1
        },
    )
    .is_empty());
    // A pointer into the dependency resolves to that part of it.
    let city = json!({"$ref": "address.json#/properties/city"});
    assert_eq!(json::inlined(&city, &v1), json!({"type": "string"}));
}

#[test]
fn a_proto_file_imports_the_files_its_references_name() {
    let common = |kind: &str| {
        Value::String(format!(
            "syntax = \"proto3\";\npackage acme;\nmessage Address {{ {kind} city = 1; }}\n"
        ))
    };
    let order = Value::String("syntax = \"proto3\";\nimport \"acme/address.proto\";\npackage acme;\nmessage Order { acme.Address ship_to = 1; int64 id = 2; }\n".into());
    let missing = ProtoSchema::parse(&order).unwrap_err();
    assert!(
        missing[0].contains("no schema reference names"),
        "{missing:?}"
    );
    let v1 = [dependency("acme/address.proto", 1, common("string"))];
    let source = Source {
        schema: &order,
        dependencies: &v1,
    };
    let schema = ProtoSchema::parse_with(source).unwrap();
    assert!(
        schema.text().contains("import \"acme/address.proto\";"),
        "{}",
        schema.text()
    );
    let value = json!({"ship_to": {"city": "Lyon"}, "id": "7"});
    let bytes = schema.encode(&value).unwrap();
    assert_eq!(schema.decode(&bytes).unwrap(), value);
    let v2 = [dependency("acme/address.proto", 2, common("int64"))];
    let problems = incompatibilities(
        Compatibility::Backward,
        SchemaFormat::Protobuf,
        source,
        Source {
            schema: &order,
            dependencies: &v2,
        },
    );
    assert!(!problems.is_empty());
}
