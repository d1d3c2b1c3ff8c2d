"""Producer process for test_durability: sends sequence-numbered messages to a topic
until killed and appends the id of every ACKNOWLEDGED message to a file, flushed on
each delivery callback.

usage: durable_producer.py BOOTSTRAP TOPIC PARTITIONS ACKED_FILE

Message id i goes to partition i % PARTITIONS with value durable_value(i).
"""

import sys
import time

from confluent_kafka import Producer


def durable_value(i: int) -> bytes:
    return f"dur-{i:09d}-{(i * 2654435761) % 2**32:08x}".encode()


def main():
    bootstrap, topic, partitions, acked_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    acked = open(acked_path, "a", buffering=1)
    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "linger.ms": 2,
        "batch.num.messages": 200,
    })

    def on_delivery(err, msg):
        if err is None:
            acked.write(f"{msg.key().decode()}\n")
            acked.flush()

    i = 0
    while True:
        try:
            p.produce(topic, key=str(i).encode(), value=durable_value(i), partition=i % partitions,
                      on_delivery=on_delivery)
            i += 1
        except BufferError:
            p.poll(0.01)
            continue
        p.poll(0)
        if i % 1000 == 0:
            time.sleep(0.002)


if __name__ == "__main__":
    main()
