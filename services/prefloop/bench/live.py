"""``prefloop bench live``: the HTTP clients of live generation and LLM judges under load.

A live run spends most of its time waiting on model servers; the client must keep
``maxConcurrency`` requests in flight without becoming the bottleneck. With a server that
answers every request after a fixed latency L, concurrency C allows at most C / L requests per
second; the bench checks that the client sustains at least ``0.9 x C / L`` (the issue's bar:
C = 64, L = 50 ms, i.e. 1152 requests/s, on 2 cores).

The server is the package's own fake OpenAI-compatible server
(:mod:`prefloop.llm.fake_server`), started as a separate process so that its work is not
counted as the client's. Two request shapes go through
:class:`~prefloop.llm.openai_http.OpenAIChatClient` (the client both the ``openai`` generation
backend and the LLM judges use):

* ``generation``: a chat prompt, up to 256 new tokens, a text reply;
* ``judge``: a rubric-judge request (``logprobs`` with 20 alternatives, 1 token), whose reply
  carries 25 first-position log-probabilities to parse.

Each shape runs ``requests`` requests through one batch call after a warm-up batch that opens
the connections. Reported per shape: requests/s, p50 / p99 latency (per request, from send to
parsed reply, not counting the wait for a turn), the client process's CPU milliseconds per
request (``time.process_time``) and the server's (from ``/proc``), and whether the bar is met.
On a machine shared with other work the throughput is bounded by the CPU the two processes
get; the CPU per request says what the client itself costs.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from prefloop.llm import ChatRequest, ChatResult, HttpEndpointConfig, OpenAIChatClient

SHAPES = ("generation", "judge")
BAR_FRACTION = 0.9
"""The throughput bar, as a fraction of the ideal ``concurrency / latency``."""


@dataclass(frozen=True)
class LiveBenchConfig:
    """What ``prefloop bench live`` measures.

    ``requests`` per shape after ``warmup`` requests; the fake server answers after
    ``latency_ms``; the client keeps ``concurrency`` requests in flight.
    """

    concurrency: int = 64
    latency_ms: float = 50.0
    requests: int = 4096
    warmup: int = 128
    out: Path | None = None


@dataclass(frozen=True)
class LiveBenchRow:
    """One shape's figures."""

    shape: str
    concurrency: int
    latency_ms: float
    requests: int
    failures: int
    seconds: float
    requests_per_second: float
    ideal_requests_per_second: float
    bar_requests_per_second: float
    meets_bar: bool
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    server_cpu_ms_per_request: float


def shape_requests(shape: str, n: int) -> list[ChatRequest]:
    """``n`` requests of one shape (distinct prompts)."""
    if shape == "judge":
        return [
            ChatRequest(
                (
                    {"role": "system", "content": "Rate the text from 1 to 5."},
                    {"role": "user", "content": f"<TEXT>answer number {i}</TEXT>"},
                ),
                max_tokens=1,
                temperature=0.0,
                top_logprobs=20,
            )
            for i in range(n)
        ]
    return [
        ChatRequest(
            ({"role": "user", "content": f"Write a short note about topic {i}."},),
            max_tokens=256,
            seed=i,
        )
        for i in range(n)
    ]


class FakeServerProcess:
    """The fake server in a child process (``python -m prefloop.llm.fake_server``)."""

    def __init__(self, latency_ms: float) -> None:
        self.latency_ms = latency_ms
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> FakeServerProcess:
        cmd = [sys.executable, "-m", "prefloop.llm.fake_server", "--latency-ms"]
        self.proc = subprocess.Popen(
            [*cmd, str(self.latency_ms)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError(f"the fake server did not start: {line!r}")
        self.base_url = line.split(" ", 1)[1]
        return self

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far (user + system), from ``/proc`` (Linux)."""
        if self.proc is None:
            return math.nan
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _measure(
    client: OpenAIChatClient, server: FakeServerProcess, cfg: LiveBenchConfig, shape: str
) -> LiveBenchRow:
    async def run() -> tuple[list[object], float, float, float]:
        async with client.open_session() as session:
            await client.complete_many(shape_requests(shape, cfg.warmup), session=session)
            requests = shape_requests(shape, cfg.requests)
            server0 = server.cpu_seconds()
            cpu0, t0 = time.process_time(), time.perf_counter()
            outcomes = await client.complete_many(requests, session=session)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            return list(outcomes), seconds, cpu, server.cpu_seconds() - server0

    outcomes, seconds, cpu, server_cpu = asyncio.run(run())
    ok = [o for o in outcomes if isinstance(o, ChatResult)]
    latencies_ms = np.array([o.seconds * 1000.0 for o in ok]) if ok else np.array([np.nan])
    ideal = cfg.concurrency / (cfg.latency_ms / 1000.0)
    rate = len(ok) / seconds
    return LiveBenchRow(
        shape=shape,
        concurrency=cfg.concurrency,
        latency_ms=cfg.latency_ms,
        requests=cfg.requests,
        failures=len(outcomes) - len(ok),
        seconds=seconds,
        requests_per_second=rate,
        ideal_requests_per_second=ideal,
        bar_requests_per_second=BAR_FRACTION * ideal,
        meets_bar=rate >= BAR_FRACTION * ideal and len(ok) == len(outcomes),
        p50_ms=float(np.percentile(latencies_ms, 50)),
        p99_ms=float(np.percentile(latencies_ms, 99)),
        cpu_ms_per_request=cpu * 1000.0 / max(len(outcomes), 1),
        server_cpu_ms_per_request=server_cpu * 1000.0 / max(len(outcomes), 1),
    )


def run_live_bench(cfg: LiveBenchConfig) -> list[LiveBenchRow]:
    """Start the fake server, measure both request shapes, write the report if ``out`` is set.

    Why a real server in another process: the figures then include the socket, HTTP parsing
    and JSON work a live run pays, and none of the server's.
    """
    if cfg.concurrency < 1 or cfg.requests < 1 or cfg.latency_ms <= 0 or cfg.warmup < 0:
        raise ValueError(
            "concurrency and requests must be >= 1, latency_ms > 0 and warmup >= 0; got "
            f"{cfg.concurrency}, {cfg.requests}, {cfg.latency_ms}, {cfg.warmup}"
        )
    with FakeServerProcess(cfg.latency_ms) as server:
        endpoint = HttpEndpointConfig(
            base_url=server.base_url,
            model="bench",
            max_concurrency=cfg.concurrency,
            timeout_seconds=30.0,
            max_attempts=1,
        )
        client = OpenAIChatClient(endpoint)
        rows = [_measure(client, server, cfg, shape) for shape in SHAPES]
    if cfg.out is not None:
        write_live_report(rows, cfg.out)
    return rows


def render_markdown(rows: list[LiveBenchRow]) -> str:
    """The report table."""
    lines = [
        "| shape | concurrency | latency | requests | failures | requests/s | bar (0.9 C/L) "
        "| meets | p50 | p99 | client CPU / request | server CPU / request |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.shape} | {r.concurrency} | {r.latency_ms:g} ms | {r.requests} | {r.failures} "
            f"| {r.requests_per_second:.0f} | {r.bar_requests_per_second:.0f} "
            f"| {'yes' if r.meets_bar else 'no'} | {r.p50_ms:.1f} ms | {r.p99_ms:.1f} ms "
            f"| {r.cpu_ms_per_request:.3f} ms | {r.server_cpu_ms_per_request:.3f} ms |"
        )
    return "\n".join(lines) + "\n"


def write_live_report(rows: list[LiveBenchRow], out: Path) -> Path:
    """``live.json`` (one object per shape) and ``live.md`` (the table); returns the latter."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "live.json").write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    md = out / "live.md"
    md.write_text("# prefloop bench live\n\n" + render_markdown(rows))
    return md
