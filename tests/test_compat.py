"""Compatibility behaviours Kafka's clients rely on (issue 16), each against a real client."""

import clients

BATCH_VALUE = 900 * 1024
PARTITIONS = 4
PER_PARTITION = 3
FETCH_MAX = 1024 * 1024


def test_fetch_max_bytes_below_the_sum_of_several_large_batches_still_reads_everything(broker_factory, topic_name):
    """KIP-74: only the first partition with data may return a batch larger than what is left of
    the request's max_bytes; later partitions whose next batch does not fit are left out of that
    response. A librdkafka consumer that refuses any response larger than its fetch.max.bytes
    (receive.message.max.bytes = fetch.max.bytes + 512, the least it accepts) reads every 900 KB
    batch of four partitions. It used to get one whole batch per partition, 3.6 MB in a response,
    and drop the connection."""
    broker = broker_factory()
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    msgs = [(b"k%d" % i, bytes([65 + i % 26]) * BATCH_VALUE) for i in range(PARTITIONS * PER_PARTITION)]
    # One record per batch (linger 0), spread round the partitions.
    clients.produce_confluent(broker.bootstrap, topic_name, msgs, partition_of=lambda i: i % PARTITIONS,
                              linger_ms=0, batch_num_messages=1, compression_type="none")
    got = clients.consume_confluent(
        broker.bootstrap, topic_name, list(range(PARTITIONS)), timeout=60,
        **{"fetch.max.bytes": FETCH_MAX, "max.partition.fetch.bytes": FETCH_MAX,
           "receive.message.max.bytes": FETCH_MAX + 512})
    assert len(got) == len(msgs)
    by_key = {k: v for _, _, k, v, _ in got}
    assert all(by_key[k] == v for k, v in msgs)


def test_incremental_alter_configs_append_and_subtract_on_cleanup_policy(broker_factory, topic_name):
    """IncrementalAlterConfigs APPEND and SUBTRACT on a list-valued config, with
    confluent-kafka's AdminClient: APPEND compact to a topic without an override gives
    `delete,compact` (Kafka starts from the config's default); SUBTRACT delete leaves `compact`; APPEND on a config that is not a list is
    INVALID_CONFIG. (A key twice in one request is INVALID_REQUEST, as Kafka; librdkafka refuses
    to send that, so it is not tried here.)"""
    import pytest
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    broker = broker_factory()
    clients.create_topic(broker.bootstrap, topic_name, 1)
    a = clients.admin(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic_name)

    def alter(*entries):
        r = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=list(entries))
        return a.incremental_alter_configs([r])[r].result(timeout=15)

    def policy():
        return a.describe_configs([res])[res].result(timeout=15)["cleanup.policy"].value

    alter(ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    assert policy() == "delete,compact"
    alter(ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    assert policy() == "delete,compact", "an item already there is not added twice"
    alter(ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT))
    assert policy() == "compact"
    with pytest.raises(KafkaException) as e:
        alter(ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.APPEND))
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value
    assert policy() == "compact", "a refused request changes nothing"
