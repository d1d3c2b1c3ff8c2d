// Drives Confluent's Node.js REST Proxy client (npm `kafka-rest`, installed unmodified by
// tests/rest_client/setup.sh) through its public API, for tests/test_rest_proxy_client.py.
//
//   node drive.js <package dir> <plan.json>
//
// The plan: {"url", "topic", "partition", "group", "to_topic": [{"key", "value"}],
// "to_partition": [{"key", "value"}], "expect": n}; keys and values are base64 (null: none).
// Prints one JSON object: the metadata the client read, its produce answers, one partition's
// records read without an instance, the records its consumer instance read (key and value base64) and its commit answer. Any client error
// exits 1 with the error on stderr.
"use strict";

const path = require("path");
const fs = require("fs");
const KafkaRest = require(path.resolve(process.argv[2]));
const plan = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const kafka = new KafkaRest({ url: plan.url });
const out = {};

function fail(what, err) {
    process.stderr.write(what + ": " + err + " " + JSON.stringify(err && err.data) + "\n");
    process.exit(1);
}

function buf(b64) {
    return b64 === null ? null : Buffer.from(b64, "base64");
}

function step(fn) {
    return new Promise((resolve) => fn(resolve));
}

async function main() {
    out.brokers = await step((done) => kafka.brokers.list((err, bs) => (err ? fail("brokers.list", err) : done(bs.map((b) => b.id)))));
    out.topics = await step((done) => kafka.topics.list((err, ts) => (err ? fail("topics.list", err) : done(ts.map((t) => t.name)))));
    out.topic = await step((done) => kafka.topic(plan.topic).get((err, t) => (err ? fail("topic.get", err) : done(t.raw))));
    out.partitions = await step((done) =>
        kafka.topic(plan.topic).partitions.list((err, ps) => (err ? fail("partitions.list", err) : done(ps.map((p) => p.raw)))),
    );
    out.partition = await step((done) =>
        kafka.topicPartition(plan.topic, plan.partition).get((err, p) => (err ? fail("partition.get", err) : done(p.raw))),
    );
    out.missing_topic = await step((done) => kafka.topic(plan.topic + "-missing").get((err) => done(err ? { status: err.status, data: err.data } : null)));

    const records = plan.to_topic.map((r) => ({ key: buf(r.key), value: buf(r.value) }));
    out.produced_topic = await step((done) => kafka.topic(plan.topic).produce(records, (err, res) => (err ? fail("topic.produce", err) : done(res))));
    const toPartition = plan.to_partition.map((r) => ({ key: buf(r.key), value: buf(r.value) }));
    out.produced_partition = await step((done) =>
        kafka.topicPartition(plan.topic, plan.partition).produce(toPartition, (err, res) => (err ? fail("partition.produce", err) : done(res))),
    );

    // The instance-less read of one partition (the client answers the records as the proxy sent them).
    out.partition_messages = await step((done) =>
        kafka.topicPartition(plan.topic, plan.partition).messages({ offset: 0, count: 1000, format: "binary" }, (err, msgs) =>
            err ? fail("partition.messages", err) : done(msgs),
        ),
    );
    const instance = await step((done) =>
        kafka.consumer(plan.group).join({ format: "binary", "auto.offset.reset": "smallest", "auto.commit.enable": "false" }, (err, ci) =>
            err ? fail("consumer.join", err) : done(ci),
        ),
    );
    out.instance = { id: instance.id, uri: instance.uri };
    const consumed = [];
    // The stream keeps reading until shutdown: whatever it reads after the expected records
    // (there should be nothing) is reported too.
    out.consumed = consumed;
    await step((done) => {
        const stream = instance.subscribe(plan.topic);
        stream.on("error", (err) => fail("stream", err));
        let reached = false;
        const deadline = setTimeout(() => fail("consume", "only " + consumed.length + " of " + plan.expect + " records in 30 s"), 30000);
        stream.on("data", (msgs) => {
            for (const m of msgs) {
                consumed.push({ key: m.key && m.key.toString("base64"), value: m.value && m.value.toString("base64"), partition: m.partition, offset: m.offset });
            }
            if (!reached && consumed.length >= plan.expect) (reached = true), clearTimeout(deadline), done();
        });
    });
    out.commit = await step((done) => instance.commit((err, res) => (err ? fail("commit", err) : done(res))));
    await step((done) => instance.shutdown((err) => (err ? fail("shutdown", err) : done())));
    process.stdout.write(JSON.stringify(out) + "\n");
}

main();
