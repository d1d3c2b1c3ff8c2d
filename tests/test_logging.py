"""Claim: with --log-format json every broker log line is one JSON object with a timestamp,
a level and a target named after Kafka's loggers (kafka.server.KafkaServer,
state.change.logger, ...), so log pipelines can parse and route it."""

import json

import clients


def test_json_log_lines_with_kafka_logger_targets(broker_factory, topic_name):
    b = broker_factory(extra_args=["--log-format", "json"])
    clients.create_topic(b.bootstrap, topic_name, 2)
    clients.produce_confluent(b.bootstrap, topic_name, [(b"k", b"v")] * 10)
    b.terminate()
    lines = [l for l in b.log_path.read_text().splitlines() if l.strip() and not l.startswith("=====")]
    assert lines, "the broker wrote no log lines"
    events = []
    for l in lines:
        try:
            events.append(json.loads(l))
        except json.JSONDecodeError as e:
            raise AssertionError(f"not a JSON log line: {l!r} ({e})")
    for e in events:
        assert {"timestamp", "level", "target"} <= e.keys(), f"missing fields in {e}"
    targets = {e["target"] for e in events}
    for wanted in ("kafka.server.KafkaServer", "state.change.logger"):
        assert wanted in targets, f"no {wanted} events; targets seen: {sorted(targets)}"
    created = [e for e in events if e["target"] == "state.change.logger" and e.get("topic") == topic_name]
    assert created, "topic creation was not logged on state.change.logger with a topic field"
