// Confluent's own REST Proxy client for Node.js (kafka-rest, from npm, v1
// API) walked through a stream's life against the portal, unchanged but for
// the API key it sends: brokers and topic metadata, binary and Avro produce
// (the Avro schema registered on the first request, its id reused after),
// consumer instances joined with v1 settings, topic reads, a commit without
// a body, and shutdown. Run by tests/tests/rest_proxy_clients.rs with the
// module tests/run.sh installs under target/test-deps/rest-client; prints one
// JSON object on its last line.
//
//   node rest_proxy_walk.js PORTAL KEY BINARY_TOPIC AVRO_TOPIC

"use strict";

const KafkaRest = require("kafka-rest");

const [portal, key, binaryTopic, avroTopic] = process.argv.slice(2);
const kafka = new KafkaRest({ url: portal, headers: { Authorization: "Bearer " + key } });

/** The client's callback style as a promise. */
function call(start) {
  return new Promise((resolve, reject) =>
    start((err, result) => (err ? reject(new Error(JSON.stringify(err))) : resolve(result)))
  );
}

/** The first `count` messages a new consumer in `format` reads of `topic`. */
async function consume(group, format, topic, count) {
  const instance = await call((cb) =>
    kafka.consumer(group).join(
      { format, "auto.offset.reset": "smallest", "auto.commit.enable": "false" },
      cb
    )
  );
  const stream = instance.subscribe(topic);
  const messages = await new Promise((resolve, reject) => {
    const got = [];
    const timer = setTimeout(() => reject(new Error("no " + count + " messages in 60s: " + JSON.stringify(got))), 60000);
    stream.on("data", (batch) => {
      got.push(...batch);
      if (got.length >= count) {
        clearTimeout(timer);
        resolve(got.slice(0, count));
      }
    });
    stream.on("error", (err) => reject(new Error(JSON.stringify(err))));
  });
  await call((cb) => instance.commit(cb));
  await call((cb) => instance.shutdown(cb));
  return messages;
}

async function main() {
  const brokers = await call((cb) => kafka.brokers.list(cb));
  const topics = await call((cb) => kafka.topics.list(cb));
  const topic = await call((cb) => kafka.topics.get(binaryTopic, cb));

  const binary = await call((cb) =>
    kafka
      .topic(binaryTopic)
      .produce([{ key: "k1", value: "first" }, "second", { partition: 0, value: "third" }], cb)
  );
  const schema = new KafkaRest.AvroSchema({
    type: "record",
    name: "Order",
    fields: [{ name: "id", type: "long" }],
  });
  const avroFirst = await call((cb) => kafka.topic(avroTopic).produce(schema, { id: 1 }, { id: 2 }, cb));
  // The schema now carries the id the first answer gave: this request
  // sends value_schema_id.
  const avroSecond = await call((cb) => kafka.topic(avroTopic).produce(schema, { id: 3 }, cb));

  const read = await consume("walk-binary", "binary", binaryTopic, 3);
  const avro = await consume("walk-avro", "avro", avroTopic, 3);
  // The commit stuck: the group reads nothing again from the start.
  const again = await call((cb) =>
    kafka.consumer("walk-binary").join({ format: "binary", "auto.offset.reset": "smallest" }, cb)
  );
  const stream = again.subscribe(binaryTopic);
  await call((cb) => kafka.topic(binaryTopic).produce(["fourth"], cb));
  const after = await new Promise((resolve) => stream.once("data", resolve));
  await call((cb) => again.shutdown(cb));

  console.log(
    JSON.stringify({
      brokers: brokers.map((b) => b.id),
      topics: topics.map((t) => t.name),
      partitions: topic.raw.partitions.length,
      binary_offsets: binary.offsets,
      avro_schema_ids: [avroFirst.value_schema_id, avroSecond.value_schema_id],
      read: read.map((m) => ({ key: m.key && m.key.toString(), value: m.value.toString() })),
      avro: avro.map((m) => m.value),
      after_commit: after.map((m) => m.value.toString()),
    })
  );
}

main().catch((err) => {
  console.error(err.stack || err);
  process.exit(1);
});
