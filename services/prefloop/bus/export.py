"""Rebuild a run's preference dataset from its Kafka annotations topic alone.

``prefloop export --from-kafka HOST:PORT --run NAME --out DIR [--formats jsonl,parquet]`` reads
``prefloop.<run>.annotations`` from the beginning, keeps one row per pair id (delivery is
at-least-once, so a re-sent row appears twice on the log), orders rows by (round, order) as the
run wrote them, and writes ``DIR`` in the run directory's dataset layout (``README.md`` card,
``data/train.*``, ``data/ties.*``) with :func:`prefloop.data.run_dataset.write_run_dataset`, the
writer of ``prefloop run``. The card's provenance holds what the rows tell (run, method, judge);
the seed and budget live in the manifest, not on the topic. The annotations topic is therefore
a complete, durable copy of the run's product: a run directory lost with its pod is recovered
from the broker.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefloop.bus.base import Bus, BusError, topic_name
from prefloop.bus.payloads import Annotation, PayloadError, annotation_from_value
from prefloop.data.card import DatasetProvenance
from prefloop.data.errors import DataError
from prefloop.data.run_dataset import TIES_POLICIES, write_run_dataset
from prefloop.data.writers import OUTPUT_FORMATS


def rebuild_dataset(
    bus: Bus,
    run: str,
    *,
    include_pseudo_labels: bool = False,
    timeout_seconds: float = 5.0,
) -> list[dict[str, Any]]:
    """The run's dataset rows from the annotations topic: deduplicated, in (round, order) order.

    Why: the export must equal the dataset the run wrote, whatever the delivery history (a
    producer retry, a round published twice after a restart).

    Args:
        bus: the bus holding the run's topics.
        run: the run name (``metadata.name``).
        include_pseudo_labels: keep rows whose label came from the model itself (ADPO).
        timeout_seconds: the read's idle period (see :meth:`Bus.read_all`).
    """
    topic = topic_name(run, "annotations")
    by_pair: dict[str, Annotation] = {}
    for record in bus.read_all(topic, timeout_seconds):
        try:
            annotation = annotation_from_value(record.value)
        except PayloadError as exc:
            raise BusError(f"{topic}: message {record.msg_id}: {exc}") from exc
        by_pair.setdefault(annotation.pair_id, annotation)
    kept = [
        a
        for a in by_pair.values()
        if include_pseudo_labels or a.row.get("label_source") != "pseudo"
    ]
    kept.sort(key=lambda a: (a.round, a.order, a.pair_id))
    return [a.row for a in kept]


def provenance_from_rows(run: str, rows: list[dict[str, Any]]) -> DatasetProvenance:
    """The card provenance a topic can tell: the run name, the methods and judges in the rows.

    Why: an exported dataset must say where it came from as far as the log knows it.
    """

    def distinct(column: str) -> str:
        return ", ".join(sorted({str(r[column]) for r in rows if r.get(column)})) or "unknown"

    return DatasetProvenance(
        run=run,
        method=distinct("acquisition"),
        judge=distinct("judge"),
        source="prefloop export --from-kafka",
    )


def parse_formats(text: str) -> tuple[str, ...]:
    """``"jsonl,parquet"`` -> ``("jsonl", "parquet")``, rejecting unknown formats by name."""
    formats = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if f not in OUTPUT_FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(
            f"--formats: {', '.join(unknown) or 'nothing given'} is not one of "
            f"{', '.join(OUTPUT_FORMATS)}"
        )
    return formats


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``prefloop export`` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "export", help="rebuild a run's dataset from its Kafka annotations topic"
    )
    p.add_argument(
        "--from-kafka",
        dest="from_kafka",
        required=True,
        metavar="HOST:PORT",
        help="bootstrap server(s) of the broker holding the run's topics",
    )
    p.add_argument("--run", required=True, help="the run name (metadata.name)")
    p.add_argument("--out", required=True, type=Path, help="directory to write the dataset to")
    p.add_argument(
        "--formats",
        type=parse_formats,
        default=OUTPUT_FORMATS,
        help=f"comma-separated output formats (default: {','.join(OUTPUT_FORMATS)})",
    )
    p.add_argument(
        "--ties",
        choices=TIES_POLICIES,
        default="separate",
        help="tied pairs: a separate file (default), in the training files, or dropped",
    )
    p.add_argument(
        "--include-pseudo-labels",
        action="store_true",
        help="keep rows labelled by the model itself (ADPO pseudo-labels)",
    )
    p.add_argument(
        "--idle-seconds",
        type=float,
        default=5.0,
        help="stop reading once no record arrived for this long (default: 5)",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        help="the run's directory: the export is checked against its latest checkpoint "
        "(default: runs/NAME when it exists)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when the topic lacks rows the run's checkpoint has (default: warn)",
    )
    return p


def run_export(args: argparse.Namespace) -> int:
    """Run ``prefloop export``; exit status 0 on success, 2 on a broker or data error, 1 with
    ``--strict`` when the run's checkpoint holds rows the topic lacks (else only a warning)."""
    from prefloop.bus.kafka_bus import KafkaBus

    try:
        bus = KafkaBus(args.from_kafka, client_id="prefloop-export")
    except ValueError as exc:
        print(f"prefloop: error: --from-kafka: {exc}", file=sys.stderr)
        return 2
    try:
        rows = rebuild_dataset(
            bus,
            args.run,
            include_pseudo_labels=args.include_pseudo_labels,
            timeout_seconds=args.idle_seconds,
        )
        written = write_run_dataset(
            args.out,
            rows,
            provenance_from_rows(args.run, rows),
            formats=tuple(args.formats),
            ties=args.ties,
        )
    except (BusError, DataError, ValueError) as exc:
        print(f"prefloop: error: {exc}", file=sys.stderr)
        return 2
    finally:
        bus.close()
    if not rows:
        print(
            f"prefloop: warning: {topic_name(args.run, 'annotations')} holds no annotations "
            f"on {args.from_kafka}; wrote an empty dataset",
            file=sys.stderr,
        )
    paths = ", ".join(str(p) for p in written.values())
    print(f"exported {len(rows)} rows of run {args.run}: {paths}")
    from prefloop.bus.completeness import check_export

    run_dir = args.run_dir or Path("runs") / args.run
    check = check_export(rows, run_dir, include_pseudo_labels=args.include_pseudo_labels)
    if check is not None and not check.complete:
        print(f"prefloop: warning: {check.message(args.run)}", file=sys.stderr)
        return 1 if args.strict else 0
    if check is None and args.run_dir is not None:
        print(
            f"prefloop: warning: {args.run_dir} has no checkpoint to check against", file=sys.stderr
        )
    return 0
