"""Claim: configuration comes from --<kafka.property>=<value> flags, LANTERN_<PROPERTY>
environment variables and a --config Java properties file, with precedence
flags > env > file; an unknown property or a bad value stops the broker at start-up
with a non-zero exit and a message naming the property."""

import pytest

import clients
from lantern import Broker, run_broker_expect_exit


def _base_args(tmp_path) -> list[str]:
    b = Broker(tmp_path / "probe")  # only used to pick ports and dirs
    return b.args()


@pytest.mark.parametrize("arg,name", [
    ("--no.such.property=1", "no.such.property"),
    ("--num.partitions=abc", "num.partitions"),
    ("--log.segment.bytes=-5x", "log.segment.bytes"),
    ("--log.flush.interval.messages=many", "log.flush.interval.messages"),
])
def test_bad_flag_fails_startup(tmp_path, arg, name):
    code, err = run_broker_expect_exit(_base_args(tmp_path) + [arg])
    assert code != 0, f"broker with {arg} exited 0; output:\n{err[-2000:]}"
    assert name in err, f"the start-up error for {arg} does not name {name!r}:\n{err[-2000:]}"


def test_unknown_property_in_config_file_fails_startup(tmp_path):
    cfg = tmp_path / "server.properties"
    cfg.write_text("# comment\nnum.partitions=2\nno.such.file.property=1\n")
    code, err = run_broker_expect_exit(_base_args(tmp_path) + ["--config", str(cfg)])
    assert code != 0, f"broker with an unknown property in its config file exited 0; output:\n{err[-2000:]}"
    assert "no.such.file.property" in err, f"the error does not name the property:\n{err[-2000:]}"


def test_bad_env_value_fails_startup(tmp_path):
    code, err = run_broker_expect_exit(_base_args(tmp_path), env={"LANTERN_NUM_PARTITIONS": "abc"})
    assert code != 0, f"broker with LANTERN_NUM_PARTITIONS=abc exited 0; output:\n{err[-2000:]}"
    assert "num.partitions" in err or "LANTERN_NUM_PARTITIONS" in err, f"the error does not name the property:\n{err[-2000:]}"


def _auto_created_partitions(broker, topic) -> int:
    """Produce to a topic that does not exist yet (auto-creation) and count its partitions."""
    clients.produce_confluent(broker.bootstrap, topic, [(b"k", b"v")], **{"message.timeout.ms": 20000})
    return clients.topic_partition_count(broker.bootstrap, topic)


AUTO = {"auto.create.topics.enable": "true"}


def test_env_sets_num_partitions(broker_factory, topic_name):
    b = broker_factory(props=AUTO, env={"LANTERN_NUM_PARTITIONS": "4"})
    assert _auto_created_partitions(b, topic_name) == 4, "LANTERN_NUM_PARTITIONS=4 was not applied"
    # and 4 really came from the env var, not from the default
    plain = broker_factory(props=AUTO)
    default = _auto_created_partitions(plain, topic_name + "-default")
    assert default != 4, "precondition: the default num.partitions should not be 4, or this test proves nothing"


def test_config_file_sets_num_partitions(broker_factory, topic_name, tmp_path):
    cfg = tmp_path / "server.properties"
    cfg.write_text("# Lantern test config\nnum.partitions = 3\n")
    b = broker_factory(props=AUTO, extra_args=["--config", str(cfg)])
    assert _auto_created_partitions(b, topic_name) == 3, "num.partitions=3 from --config file was not applied"


def test_flag_beats_env(broker_factory, topic_name):
    b = broker_factory(props={**AUTO, "num.partitions": 2}, env={"LANTERN_NUM_PARTITIONS": "4"})
    assert _auto_created_partitions(b, topic_name) == 2, "--num.partitions=2 should win over LANTERN_NUM_PARTITIONS=4"


def test_env_beats_config_file(broker_factory, topic_name, tmp_path):
    cfg = tmp_path / "server.properties"
    cfg.write_text("num.partitions=3\n")
    b = broker_factory(props=AUTO, env={"LANTERN_NUM_PARTITIONS": "5"}, extra_args=["--config", str(cfg)])
    assert _auto_created_partitions(b, topic_name) == 5, "LANTERN_NUM_PARTITIONS=5 should win over num.partitions=3 in the file"


def test_flag_beats_config_file(broker_factory, topic_name, tmp_path):
    cfg = tmp_path / "server.properties"
    cfg.write_text("num.partitions=3\n")
    b = broker_factory(props={**AUTO, "num.partitions": 6}, extra_args=["--config", str(cfg)])
    assert _auto_created_partitions(b, topic_name) == 6, "--num.partitions=6 should win over the file's 3"


def test_env_log_dirs(broker_factory, topic_name, tmp_path):
    """Env vars cover dotted names in general (LANTERN_LOG_DIRS -> log.dirs)."""
    d = tmp_path / "env-data"
    b = broker_factory(start=False, props=AUTO)
    b.data_dirs = []  # no --log.dirs flag: the env var must supply it
    b.env["LANTERN_LOG_DIRS"] = str(d)
    b.start()
    clients.produce_confluent(b.bootstrap, topic_name, [(b"k", b"v")], **{"message.timeout.ms": 20000})
    assert (d / f"{topic_name}-0").is_dir(), f"LANTERN_LOG_DIRS={d} not used: {list(d.glob('*')) if d.exists() else 'missing'}"
