"""Pack several records of one key into one Kafka message, and unpack them.

kafka-python spends most of its time per message (about 6k messages/s on 2 cores), not per byte,
so a data plane that sends one Kafka message per record is capped by the client. Records that
share a key go to the same partition anyway, so consecutive records of one key are packed into
one message whose value is a JSON array envelope::

    [{"msg_id": "...", "value": {...}}, {"msg_id": "...", "value": {...}}, ...]

with the key as the Kafka message key. The per-key order of records is kept, which is all Kafka
promises. A message whose value is a single JSON object in :meth:`Record.encode` form is also
read, so a producer that does not batch can share a topic with one that does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from prefloop.bus.base import BusError, Record

ENVELOPE_OVERHEAD_BYTES = 2
"""The ``[`` and ``]`` around the packed records."""


@dataclass(frozen=True)
class PackedMessage:
    """One Kafka message to send: its key, its encoded value and how many records it holds."""

    key: str
    payload: bytes
    num_records: int


def _encode_item(record: Record) -> bytes:
    try:
        return json.dumps(
            {"msg_id": record.msg_id, "value": record.value},
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise BusError(
            f"record {record.msg_id!r} (key {record.key!r}) cannot be encoded as JSON: {exc}"
        ) from exc


def pack_records(
    records: Iterable[Record], *, max_records: int, max_bytes: int
) -> list[PackedMessage]:
    """Group records by key (keeping per-key order) into messages of bounded size.

    Why: one Kafka message per record caps kafka-python near 6k records/s; packing ``n`` records
    of a key into one message multiplies that by up to ``n`` without changing per-key order.

    Args:
        records: the records to send, in publication order.
        max_records: at most this many records per message (1 disables batching).
        max_bytes: a message is closed before it would exceed this many bytes; a single record
            larger than this still goes out alone in its own message.

    Returns:
        The messages, grouped per key in the order each key first appeared.
    """
    if max_records < 1:
        raise ValueError(f"max_records must be >= 1, got {max_records}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    by_key: dict[str, list[Record]] = {}
    for record in records:
        if not isinstance(record, Record):
            raise BusError(f"publish expects Record objects, got {type(record).__name__}")
        by_key.setdefault(record.key, []).append(record)
    messages: list[PackedMessage] = []
    for key, group in by_key.items():
        parts: list[bytes] = []
        size = ENVELOPE_OVERHEAD_BYTES
        for record in group:
            item = _encode_item(record)
            grown = size + len(item) + (1 if parts else 0)
            if parts and (len(parts) >= max_records or grown > max_bytes):
                messages.append(PackedMessage(key, b"[" + b",".join(parts) + b"]", len(parts)))
                parts, size = [], ENVELOPE_OVERHEAD_BYTES
                grown = size + len(item)
            parts.append(item)
            size = grown
        if parts:
            messages.append(PackedMessage(key, b"[" + b",".join(parts) + b"]", len(parts)))
    return messages


def unpack_message(key: bytes | None, payload: bytes, where: str) -> list[Record]:
    """The records of one Kafka message (a batch envelope or a single encoded Record).

    Why: consumers must read both batched and unbatched messages; a malformed message is a
    producer bug and is reported with its topic, partition and offset (``where``).
    """
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BusError(f"{where}: message value is not JSON: {exc}") from exc
    if isinstance(data, dict):
        try:
            return [Record(str(data["key"]), str(data["msg_id"]), dict(data["value"]))]
        except (KeyError, TypeError, ValueError) as exc:
            raise BusError(f"{where}: a single-record message needs key, msg_id, value") from exc
    if not isinstance(data, list):
        raise BusError(f"{where}: message value must be a JSON array or object")
    if key is None:
        raise BusError(f"{where}: a batched message must carry its key")
    text_key = key.decode("utf-8")
    out: list[Record] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "msg_id" not in item or "value" not in item:
            raise BusError(f"{where}: item {i} of the batch needs msg_id and value")
        if not isinstance(item["value"], dict):
            raise BusError(f"{where}: item {i} value must be a JSON object")
        out.append(Record(text_key, str(item["msg_id"]), item["value"]))
    return out
