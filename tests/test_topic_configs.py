"""Claims: every topic config Kafka 3.9 defines is accepted, validated as Kafka validates it,
stored and described with Kafka's default, source and synonyms (confluent-kafka's
AdminClient); unknown names stay refused with INVALID_CONFIG; broker-level defaults of topic
configs (static properties) are reported as the topic config's value and synonym."""

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

import clients
from lantern import Broker, run_broker_expect_exit

DEFAULT_CONFIG, TOPIC_CONFIG, STATIC_BROKER_CONFIG = 5, 1, 4

# Kafka 3.9's LogConfig: name -> default as DescribeConfigs reports it on a broker with no
# configuration (Lantern's own defaults differ for flush.ms, see docs/configuration.md).
KAFKA_3_9_DEFAULTS = {
    "cleanup.policy": "delete", "compression.gzip.level": "-1", "compression.lz4.level": "9",
    "compression.type": "producer", "compression.zstd.level": "3", "delete.retention.ms": "86400000",
    "file.delete.delay.ms": "60000", "flush.messages": "9223372036854775807",
    "follower.replication.throttled.replicas": "", "index.interval.bytes": "4096",
    "leader.replication.throttled.replicas": "", "local.retention.bytes": "-2", "local.retention.ms": "-2",
    "max.compaction.lag.ms": "9223372036854775807", "max.message.bytes": "1048588",
    "message.downconversion.enable": "true", "message.format.version": "3.0-IV1",
    "message.timestamp.after.max.ms": "9223372036854775807", "message.timestamp.before.max.ms": "9223372036854775807",
    "message.timestamp.difference.max.ms": "9223372036854775807", "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.5", "min.compaction.lag.ms": "0", "min.insync.replicas": "1",
    "preallocate": "false", "remote.log.copy.disable": "false", "remote.log.delete.on.disable": "false",
    "remote.storage.enable": "false", "retention.bytes": "-1", "retention.ms": "604800000",
    "segment.bytes": "1073741824", "segment.index.bytes": "10485760", "segment.jitter.ms": "0",
    "segment.ms": "604800000", "unclean.leader.election.enable": "false",
}

# A non-default value for each config that has no effect on a one-broker test.
OVERRIDES = {
    "compression.gzip.level": "9", "compression.lz4.level": "17", "compression.zstd.level": "-5",
    "file.delete.delay.ms": "0", "max.compaction.lag.ms": "600000", "message.downconversion.enable": "false",
    "message.format.version": "2.8", "message.timestamp.difference.max.ms": "86400000",
    "message.timestamp.after.max.ms": "3600000", "message.timestamp.before.max.ms": "7200000",
    "preallocate": "true", "segment.index.bytes": "65536", "segment.jitter.ms": "1000",
    "local.retention.ms": "-1", "local.retention.bytes": "1000000", "remote.log.copy.disable": "true",
    "remote.log.delete.on.disable": "true", "remote.storage.enable": "false",
}


def _result(futures: dict, timeout: float = 15.0):
    return {k: f.result(timeout=timeout) for k, f in futures.items()}


def _src(entry) -> int:
    return getattr(entry.source, "value", entry.source)


def _synonyms(entry) -> dict:
    """confluent-kafka keeps synonyms in a dict by name (so of two with one name, one shows)."""
    return {n: (e.value, _src(e)) for n, e in entry.synonyms.items()}


def _describe(a, topic: str) -> dict:
    """DescribeConfigs as librdkafka sends it (v1, with synonyms)."""
    res = ConfigResource(ResourceType.TOPIC, topic)
    return _result(a.describe_configs([res]))[res]


def test_every_kafka_topic_config_is_described_with_kafkas_default(broker, topic_name):
    a = clients.admin(broker.bootstrap)
    _result(a.create_topics([NewTopic(topic_name, 1, 1)]))
    configs = _describe(a, topic_name)
    got = {n: e.value for n, e in configs.items()}
    expected = dict(KAFKA_3_9_DEFAULTS, **{"flush.ms": "1000"})
    assert got == expected
    for name, e in configs.items():
        assert _src(e) == DEFAULT_CONFIG and e.is_default, (name, e.source)
    # The broker synonym's default comes with it, as Kafka lists it.
    assert _synonyms(configs["message.timestamp.type"]) == {"log.message.timestamp.type": ("CreateTime", DEFAULT_CONFIG)}
    assert _synonyms(configs["remote.storage.enable"]) == {}, "Kafka has no server default for it"


def test_every_kafka_topic_config_is_accepted_stored_and_reported(broker, topic_name):
    a = clients.admin(broker.bootstrap)
    _result(a.create_topics([NewTopic(topic_name, 1, 1, config=OVERRIDES)]))
    configs = _describe(a, topic_name)
    for name, value in OVERRIDES.items():
        assert configs[name].value == value, name
        assert _src(configs[name]) == TOPIC_CONFIG and not configs[name].is_default, name
    # DELETE returns each to Kafka's default.
    undo = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry(n, None, incremental_operation=AlterConfigOpType.DELETE) for n in OVERRIDES])
    _result(a.incremental_alter_configs([undo]))
    configs = _describe(a, topic_name)
    for name in OVERRIDES:
        assert (configs[name].value, _src(configs[name])) == (KAFKA_3_9_DEFAULTS[name], DEFAULT_CONFIG), name


@pytest.mark.parametrize("name,value", [
    ("compression.type", "brotli"),
    ("message.timestamp.type", "createtime"),
    ("segment.index.bytes", "3"),
    ("segment.bytes", "2147483648"),
    ("compression.gzip.level", "0"),
    ("compression.zstd.level", "23"),
    ("preallocate", "maybe"),
    ("max.compaction.lag.ms", "0"),
    ("message.format.version", "newest"),
    ("no.such.config", "1"),
])
def test_invalid_values_and_unknown_names_are_refused(broker, topic_name, name, value):
    a = clients.admin(broker.bootstrap)
    with pytest.raises(KafkaException) as e:
        _result(a.create_topics([NewTopic(topic_name, 1, 1, config={name: value})]))
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value
    if name == "no.such.config":
        assert "Unknown topic config name: no.such.config" in str(e.value)
    else:
        assert f"Invalid value {value} for configuration {name}" in str(e.value)
    _result(a.create_topics([NewTopic(topic_name, 1, 1)]))
    alter = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        _result(a.incremental_alter_configs([alter]))
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value


def test_min_compaction_lag_above_max_is_refused(broker, topic_name):
    a = clients.admin(broker.bootstrap)
    _result(a.create_topics([NewTopic(topic_name, 1, 1, config={"max.compaction.lag.ms": "1000"})]))
    alter = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("min.compaction.lag.ms", "5000", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        _result(a.incremental_alter_configs([alter]))
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value
    assert "min.compaction.lag.ms (5000) > max.compaction.lag.ms (1000)" in str(e.value)


def test_broker_level_defaults_are_the_topic_default_and_its_synonym(broker_factory, topic_name):
    b = broker_factory(props={"log.message.timestamp.type": "LogAppendTime", "compression.type": "zstd",
                              "log.roll.jitter.hours": "1", "log.cleaner.min.cleanable.ratio": "0.25"})
    a = clients.admin(b.bootstrap)
    _result(a.create_topics([NewTopic(topic_name, 1, 1, config={"compression.type": "gzip"})]))
    configs = _describe(a, topic_name)
    ts = configs["message.timestamp.type"]
    assert (ts.value, _src(ts), ts.is_default) == ("LogAppendTime", STATIC_BROKER_CONFIG, False)
    assert "log.message.timestamp.type" in _synonyms(ts)
    ct = configs["compression.type"]
    assert (ct.value, _src(ct)) == ("gzip", TOPIC_CONFIG)
    assert set(_synonyms(ct)) == {"compression.type"}
    assert configs["segment.jitter.ms"].value == "3600000"
    assert configs["min.cleanable.dirty.ratio"].value == "0.25"
    # The broker resource reports the properties themselves.
    res = ConfigResource(ResourceType.BROKER, "1")
    broker_configs = _result(a.describe_configs([res]))[res]
    assert broker_configs["log.message.timestamp.type"].value == "LogAppendTime"
    assert _src(broker_configs["log.message.timestamp.type"]) == STATIC_BROKER_CONFIG
    assert (broker_configs["log.preallocate"].value, _src(broker_configs["log.preallocate"])) == ("false", DEFAULT_CONFIG)


@pytest.mark.parametrize("arg", ["--compression.type=brotli", "--compression.gzip.level=0",
                                 "--log.message.timestamp.type=Now", "--log.cleaner.min.cleanable.ratio=2"])
def test_bad_broker_level_default_stops_startup(tmp_path, arg):
    code, err = run_broker_expect_exit(Broker(tmp_path / "probe").args() + [arg])
    name = arg[2:].split("=")[0]
    assert code != 0 and name in err, err[-2000:]
