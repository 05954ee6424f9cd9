"""Service mode against embedded: round-time overhead and recovery time after a role kill.

``python -m prefloop.rpc.bench_services [--manifest examples/quickstart.yaml] [--set ...]
[--broker] [--out bench-reports/services]``

1. embeds the pool once into a feature cache both modes share (so neither pays for embedding);
2. runs the manifest embedded and notes each round's ``round_seconds``;
3. starts the five services as ``prefloop up`` does (with ``--broker`` also a durable broker,
   the run then publishing to Kafka), drives the same run through them, and SIGKILLs a role
   before one of its calls in the last rounds (the trainer before its 4th Train, the reward
   service before its 5th Score by default), restarting it at once; the recovery time of a kill
   is the time from the kill to the end of the call that met the dead service (the service's
   restart, its model load and the call itself);
4. reports the mean round time of the rounds before the first kill in both modes, their ratio
   (target <= 1.3x), and the recovery times, as JSON on stdout and in ``OUT/services.json``.

Figures depend on the machine and its load; both modes share the CPU with nothing else of
prefloop's, and the services' clients run on loopback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from prefloop.engine.runner import execute
from prefloop.rpc.clients import connect_roles, parse_connect
from prefloop.rpc.up import Stack, bring_up, cache_override, warm_feature_cache
from prefloop.spec import load_activerun


class KillBeforeCall:
    """Wraps a role method: before call ``at`` it SIGKILLs the role's service and restarts it;
    ``recovery_seconds`` is the time from the kill to the end of that call."""

    def __init__(self, role: Any, method: str, stack: Stack, name: str, at: int) -> None:
        self.inner = getattr(role, method)
        self.stack, self.name, self.at = stack, name, at
        self.calls = 0
        self.recovery_seconds = math.nan
        setattr(role, method, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls != self.at:
            return self.inner(*args, **kwargs)
        child = self.stack.children[self.name]
        child.proc.kill()
        killed = time.monotonic()
        child.proc.wait()
        child.restart()
        out = self.inner(*args, **kwargs)
        self.recovery_seconds = time.monotonic() - killed
        return out


def round_seconds(run_dir: Path) -> list[float]:
    """Each round's ``round_seconds`` from a run directory's ``metrics.jsonl``."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [float(json.loads(line)["round_seconds"]) for line in lines if line.strip()]


def dataset_bytes(run_dir: Path) -> bytes:
    """The run's JSONL dataset (``data/train.jsonl``, or ``dataset.jsonl`` of older layouts)."""
    for name in ("data/train.jsonl", "dataset.jsonl"):
        if (run_dir / name).is_file():
            return (run_dir / name).read_bytes()
    raise FileNotFoundError(f"{run_dir} holds no JSONL dataset")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print and write the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, default=Path("examples/quickstart.yaml"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    p.add_argument("--broker", action="store_true", help="with a durable broker (Kafka plane)")
    p.add_argument("--out", type=Path, default=Path("bench-reports/services"))
    p.add_argument("--kill-trainer-at", type=int, default=4, help="Train call to kill before")
    p.add_argument("--kill-reward-at", type=int, default=5, help="Score call to kill before")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out: Path = args.out.resolve()
    cache = out / "features"
    overrides = [*args.overrides, cache_override(cache)]
    manifest_dir = args.manifest.resolve().parent
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the bench

    warm_feature_cache(args.manifest, args.overrides, cache)
    run = load_activerun(args.manifest, overrides)
    execute(run, manifest_dir=manifest_dir, output=str(out / "embedded"), console=quiet)
    embedded = round_seconds(out / "embedded")

    up_args = argparse.Namespace(
        manifest=args.manifest, overrides=overrides, broker=args.broker, broker_port=0,
        kafka=None, host="127.0.0.1", port_base=0, metrics_port_base=0,
        state_dir=out / "state", grace=5.0, start_timeout_seconds=900.0,
    )  # fmt: skip
    stack = bring_up(up_args, run, lambda line: None, [])
    try:
        connected = connect_roles(run, parse_connect(stack.connect_string()))
        kills = [
            KillBeforeCall(connected.roles.trainer, "train", stack, "trainer",
                           args.kill_trainer_at),
            KillBeforeCall(connected.roles.reward, "score", stack, "reward", args.kill_reward_at),
        ]  # fmt: skip
        try:
            execute(
                run,
                manifest_dir=manifest_dir,
                output=str(out / "services"),
                roles=connected.roles,
                console=quiet,
                publisher=connected.publisher,
                wait_ready=connected.wait_until_serving,
            )
        finally:
            connected.close()
    finally:
        stack.stop(10.0)
    services = round_seconds(out / "services")
    clean = min(args.kill_trainer_at, args.kill_reward_at) - 1  # rounds before the first kill
    emb_mean = sum(embedded[:clean]) / clean
    svc_mean = sum(services[:clean]) / clean
    report = {
        "manifest": str(args.manifest),
        "overrides": args.overrides,
        "kafka": bool(args.broker),
        "rounds_compared": clean,
        "embedded_round_seconds": round(emb_mean, 3),
        "service_round_seconds": round(svc_mean, 3),
        "ratio": round(svc_mean / emb_mean, 3),
        "recovery_seconds": {k.name: round(k.recovery_seconds, 2) for k in kills},
        "datasets_equal": dataset_bytes(out / "embedded") == dataset_bytes(out / "services"),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "services.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
