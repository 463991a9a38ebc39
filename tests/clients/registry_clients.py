"""confluent-kafka's own Schema Registry serializers against Freeport.

Run by tests/tests/registry_clients.rs (with the interpreter tests/run.sh
installs under target/test-deps/clients). Two modes, each printing one JSON
object on its last line:

  produce PORTAL CA KEY BOOTSTRAP
      as the stream's owner: AvroSerializer and JSONSerializer register
      their schemas through PORTAL/registry (auto.register.schemas) and
      produce five records each to "orders" and "events" on BOOTSTRAP, the
      keys of "orders" Avro too (subject "orders-key"), and ProtobufSerializer
      five payments to "payments" (registering the base64 descriptor the
      Python client sends); then an incompatible Avro and an incompatible
      Protobuf schema are registered, which must be refused with
      Confluent's 409. Shipments are written under a schema that refers to
      the "addresses-value" subject's acme.Address (a schema reference),
      which then cannot be deleted (Confluent's 42206); ProtobufSerializer
      writes visits, whose .proto imports acme/place.proto (registered as a
      reference to "places-value").
  consume PORTAL CA KEY BOOTSTRAP
      as the partner: AvroDeserializer and JSONDeserializer read the copies
      ("orders-copy", "events-copy") on the partner's BOOTSTRAP, keys and
      values, fetching the writers' schemas by id with the partner's own
      key; ProtobufDeserializer reads "payments-copy" with a message class
      built from the schema the partner's subject serves (masked fields are
      strings there); AvroDeserializer reads "shipments-copy", resolving the
      reference the writer's schema names through the partner's registry,
      and ProtobufDeserializer reads "visits-copy" with a class built from
      the served schema and the file its reference names.
"""

import base64
import json
import sys
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

ORDER_V2 = json.dumps({
    "type": "record", "name": "Order", "namespace": "acme",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "note", "type": "string", "default": ""},
    ],
})
# A new field without a default: old data cannot be read with it (BACKWARD).
ORDER_BREAKING = json.dumps({
    "type": "record", "name": "Order", "namespace": "acme",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "note", "type": "string", "default": ""},
        {"name": "total", "type": "double"},
    ],
})
EVENT = json.dumps({
    "type": "object",
    "properties": {"id": {"type": "integer"}, "kind": {"type": "string"}},
})
ORDER_KEY = json.dumps({
    "type": "record", "name": "OrderKey", "namespace": "acme",
    "fields": [{"name": "region", "type": "string"}, {"name": "n", "type": "int"}],
})
ADDRESS = json.dumps({
    "type": "record", "name": "Address", "namespace": "acme",
    "fields": [{"name": "city", "type": "string"}],
})
# The shipments schema names acme.Address, defined by the addresses subject.
SHIPMENT = json.dumps({
    "type": "record", "name": "Shipment", "namespace": "acme",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "carrier", "type": "string", "default": ""},
        {"name": "to", "type": ["null", "acme.Address"], "default": None},
    ],
})
COUNT = 5
# What "payments" is registered with as .proto text; the Python client sends
# the same schema as a descriptor.
PAYMENT_BREAKING = """syntax = "proto3";
package acme;
message Payment {
  int64 id = 1;
  string card = 2;
  string amount = 3;
}
"""


def message_class(file, name):
    """The message class `name` of a FileDescriptorProto, as generated code
    would have it."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def payment_class():
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="payments.proto", package="acme", syntax="proto3")
    message = file.message_type.add(name="Payment")
    for number, (name, kind) in enumerate(
        [("id", field.TYPE_INT64), ("card", field.TYPE_STRING), ("amount", field.TYPE_DOUBLE)], 1
    ):
        message.field.add(name=name, number=number, type=kind, label=field.LABEL_OPTIONAL)
    return message_class(file, "acme.Payment")


def visit_class():
    """acme.Visit, whose `at` is an acme.Place from another file
    (acme/place.proto): a schema with an import, which the serializer
    registers as a reference."""
    field = descriptor_pb2.FieldDescriptorProto
    place = descriptor_pb2.FileDescriptorProto(name="acme/place.proto", package="acme", syntax="proto3")
    place.message_type.add(name="Place").field.add(
        name="city", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    visit = descriptor_pb2.FileDescriptorProto(
        name="visits.proto", package="acme", syntax="proto3", dependency=["acme/place.proto"])
    message = visit.message_type.add(name="Visit")
    message.field.add(name="id", number=1, type=field.TYPE_INT64, label=field.LABEL_OPTIONAL)
    message.field.add(name="at", number=2, type=field.TYPE_MESSAGE, type_name=".acme.Place",
                      label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(place)
    pool.Add(visit)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("acme.Visit")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("acme.Place")))


def served_class(client, subject, name):
    """The message class `name` of the latest version `subject` serves,
    built with the files its references name (fetched as the partner)."""
    latest = client.get_latest_version(subject, fmt="serialized")
    pool = descriptor_pool.DescriptorPool()
    for reference in latest.schema.references:
        dep = client.get_version(reference.subject, reference.version, fmt="serialized")
        file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(dep.schema.schema_str))
        file.name = reference.name
        pool.Add(file)
    file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(latest.schema.schema_str))
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name)), latest


def registry(portal, ca, key):
    return SchemaRegistryClient({
        "url": portal + "/registry",
        "basic.auth.user.info": "client:" + key,
        "ssl.ca.location": ca,
    })


def produce(portal, ca, key, bootstrap):
    client = registry(portal, ca, key)
    avro = AvroSerializer(client, ORDER_V2, conf={"auto.register.schemas": True})
    jsons = JSONSerializer(EVENT, client, conf={"auto.register.schemas": True})
    keys = StringSerializer()
    order_keys = AvroSerializer(client, ORDER_KEY, conf={"auto.register.schemas": True})
    payment = payment_class()
    protos = ProtobufSerializer(payment, client, conf={"auto.register.schemas": True})
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for n in range(COUNT):
        order = {"id": n, "note": "order %d" % n}
        producer.produce(
            "orders",
            key=order_keys({"region": "eu", "n": n}, SerializationContext("orders", MessageField.KEY)),
            value=avro(order, SerializationContext("orders", MessageField.VALUE)),
        )
        producer.produce(
            "payments",
            key=keys(str(n)),
            value=protos(
                payment(id=n + 1, card="4111-%d" % n, amount=(n + 1) * 1.5),
                SerializationContext("payments", MessageField.VALUE),
            ),
        )
        event = {"id": n, "kind": "created"}
        producer.produce(
            "events",
            key=keys(str(n)),
            value=jsons(event, SerializationContext("events", MessageField.VALUE)),
        )
    address = client.register_schema("addresses-value", Schema(ADDRESS, "AVRO"))
    shipment = Schema(SHIPMENT, "AVRO", [SchemaReference("acme.Address", "addresses-value", 1)])
    shipments = AvroSerializer(client, shipment, conf={"auto.register.schemas": True})
    for n in range(COUNT):
        producer.produce(
            "shipments",
            key=keys(str(n)),
            value=shipments(
                {"id": n, "carrier": "post", "to": {"city": "Lyon"}},
                SerializationContext("shipments", MessageField.VALUE),
            ),
        )
    # The import registers as a reference: Freeport's subjects are its
    # streams', so the strategy names the stream that has the file.
    visit, place = visit_class()
    visits = ProtobufSerializer(visit, client, conf={
        "auto.register.schemas": True,
        "reference.subject.name.strategy": lambda ctx, dependency: "places-value",
    })
    for n in range(COUNT):
        producer.produce(
            "visits",
            key=keys(str(n)),
            value=visits(visit(id=n, at=place(city="Lyon")), SerializationContext("visits", MessageField.VALUE)),
        )
    left = producer.flush(30)
    if left:
        raise SystemExit("%d records not delivered" % left)
    referenced_refused = None
    try:
        client.delete_version("addresses-value", 1)
    except SchemaRegistryError as e:
        referenced_refused = {"http_status": e.http_status_code, "error_code": e.error_code, "message": e.error_message}
    shipment_latest = client.get_latest_version("shipments-value")
    visits_latest = client.get_latest_version("visits-value")

    refused = None
    try:
        client.register_schema("orders-value", Schema(ORDER_BREAKING, "AVRO"))
    except SchemaRegistryError as e:
        refused = {"http_status": e.http_status_code, "error_code": e.error_code, "message": e.error_message}
    protobuf_refused = None
    try:
        client.register_schema("payments-value", Schema(PAYMENT_BREAKING, "PROTOBUF"))
    except SchemaRegistryError as e:
        protobuf_refused = {"http_status": e.http_status_code, "error_code": e.error_code, "message": e.error_message}
    payments = client.get_latest_version("payments-value")
    # The client's own calls for a subject's life: its level, versions,
    # soft and permanent deletes (a throwaway key subject of "events").
    level = client.set_compatibility("events-key", "FULL")
    client.register_schema("events-key", Schema(json.dumps({"type": "string"}), "JSON"))
    client.register_schema("events-key", Schema(json.dumps({"type": "string", "description": "an id"}), "JSON"))
    lifecycle = {
        "level": [level, client.get_compatibility("events-key")],
        "versions": client.get_versions("events-key"),
        "soft_one": client.delete_version("events-key", 2),
        "after_one": client.get_versions("events-key"),
        "soft_all": client.delete_subject("events-key"),
        "permanent": client.delete_subject("events-key", permanent=True),
        "subjects": sorted(client.get_subjects()),
    }
    latest = client.get_latest_version("orders-value")
    key = client.get_latest_version("orders-key")
    print(json.dumps({
        "refused": refused,
        "orders_latest": {"id": latest.schema_id, "version": latest.version},
        "orders_key": {"id": key.schema_id, "version": key.version},
        "payments_latest": {"id": payments.schema_id, "version": payments.version},
        "protobuf_refused": protobuf_refused,
        "lifecycle": lifecycle,
        "is_compatible": client.test_compatibility("orders-value", Schema(ORDER_BREAKING, "AVRO")),
        "address_id": address,
        "shipments_latest": {
            "id": shipment_latest.schema_id,
            "version": shipment_latest.version,
            "references": [
                {"name": r.name, "subject": r.subject, "version": r.version}
                for r in shipment_latest.schema.references
            ],
        },
        "referenced_refused": referenced_refused,
        "visits_latest": {
            "version": visits_latest.version,
            "references": [
                {"name": r.name, "subject": r.subject, "version": r.version}
                for r in visits_latest.schema.references
            ],
        },
    }))


def consume(portal, ca, key, bootstrap):
    client = registry(portal, ca, key)
    readers = {
        "orders-copy": AvroDeserializer(client),
        "events-copy": JSONDeserializer(None, schema_registry_client=client),
        "shipments-copy": AvroDeserializer(client),
    }
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "partner-readers",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    # The partner's message class, from the schema its subject serves: the
    # base64 descriptor, as generated code would be built from it.
    # The link derives it with the first record it delivers.
    deadline = time.time() + 60
    while True:
        try:
            delivered = client.get_latest_version("payments-copy-value", fmt="serialized")
            break
        except SchemaRegistryError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(delivered.schema.schema_str))
    payment = message_class(file, "acme.Payment")
    readers["payments-copy"] = ProtobufDeserializer(payment, schema_registry_client=client)
    # The visits copy's class, with the file its schema imports, fetched
    # through the reference the partner is shown. The link derives the
    # masked schema with the first record of the new version it delivers.
    deadline = time.time() + 60
    while True:
        visit, delivered = served_class(client, "visits-copy-value", "acme.Visit")
        if delivered.version == 2 or time.time() > deadline:
            break
        time.sleep(0.5)
    readers["visits-copy"] = ProtobufDeserializer(visit, schema_registry_client=client)
    key_readers = {"orders-copy": AvroDeserializer(client)}
    consumer.subscribe(list(readers))
    got = {topic: [] for topic in readers}
    keys = {topic: [] for topic in key_readers}
    deadline = time.time() + 60
    while time.time() < deadline and any(len(v) < COUNT for v in got.values()):
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            print("consumer error:", message.error(), file=sys.stderr)
            continue
        topic = message.topic()
        value = readers[topic](message.value(), SerializationContext(topic, MessageField.VALUE))
        if topic in ("payments-copy", "visits-copy"):
            value = json_format.MessageToDict(value, preserving_proto_field_name=True)
        got[topic].append(value)
        if topic in key_readers:
            key = key_readers[topic](message.key(), SerializationContext(topic, MessageField.KEY))
            keys[topic].append(key)
    consumer.close()
    print(json.dumps({"values": got, "keys": keys}))


if __name__ == "__main__":
    mode, portal, ca, key, bootstrap = sys.argv[1:6]
    {"produce": produce, "consume": consume}[mode](portal, ca, key, bootstrap)
