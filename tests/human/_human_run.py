"""A tiny human-judged run for the tests: 4 prompts of the AlpacaEval sample, 3 short responses
each, 2-prompt rounds, a 4-head ensemble on 64-token MiniLM features (cached per session)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from prefloop.engine.build import build_embedded_roles
from prefloop.engine.round_engine import Roles, RunResult
from prefloop.engine.runner import execute
from prefloop.judge.human.judge import HumanJudge
from prefloop.judge.human.server import PageServer, human_judge_of
from prefloop.spec import ActiveRun, load_activerun

XSS_TEXT = (
    "Sure. <script>alert(1)</script> and <img src=x onerror=\"fetch('/pwned')\"> done.\n\n"
    "```python\nprint('hi')\n```"
)


def write_pool(repo_root: Path, path: Path, *, xss: bool = False) -> dict[tuple[str, str], float]:
    """Four prompts with three short scored responses each; the texts' scores by (prompt, text)."""
    rows = []
    with (repo_root / "data/alpacaeval/sample100.jsonl").open() as f:
        for line in list(f)[:4]:
            row = json.loads(line)
            row["responses"] = [{**r, "text": r["text"][:300]} for r in row["responses"][:3]]
            rows.append(row)
    if xss:
        rows[0]["responses"][0]["text"] = XSS_TEXT
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {
        (r["prompt_id"], resp["text"]): float(resp["score"])
        for r in rows
        for resp in r["responses"]
    }


def choice_by_score(pair: dict[str, Any], scores: dict[tuple[str, str], float]) -> str:
    """What a person who prefers the higher stored score clicks for ``pair`` as ``/api/next``
    shows it (the side's choice, ``tie`` on equal scores)."""
    by_text = {text: s for (_, text), s in scores.items()}
    left, right = by_text[pair["left_text"]], by_text[pair["right_text"]]
    return "tie" if left == right else str(pair["left_choice" if left > right else "right_choice"])


def manifest(
    tmp: Path, pool: Path, cache: Path, judge: dict[str, Any], name: str = "human"
) -> Path:
    """A manifest of the tiny run with ``judge``."""
    doc = {
        "apiVersion": "prefloop.dev/v1alpha1",
        "kind": "ActiveRun",
        "metadata": {"name": name},
        "spec": {
            "seed": 3,
            "batchSize": 2,
            "prompts": {"path": str(pool), "shuffle": True},
            "responses": {"source": "precomputed"},
            "rewardModel": {
                "embedder": {"kind": "minilm", "maxLengthTokens": 64, "cacheDir": str(cache)},
                "head": {"kind": "ensemble", "numHeads": 4, "hiddenDim": 16},
            },
            "acquisition": {"method": "delta_ucb"},
            "judge": judge,
            "trainer": {"maxStepsPerRound": 5, "batchSize": 4, "epochsPerRound": 1},
            "budget": {"maxAnnotations": 4},
            "evaluation": {"heldoutFraction": 0.0},
            "output": {"dir": str(tmp / "runs" / "{name}")},
        },
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def oracle_result(tmp: Path, pool: Path, cache: Path, name: str) -> RunResult:
    """The tiny run labelled by the deterministic stored-score oracle (what people should match)."""
    path = manifest(tmp, pool, cache, {"kind": "oracle", "mode": "deterministic"}, name)
    return execute(load_activerun(path), output=str(tmp / "oracle"), console=Console(quiet=True))


def rows_without_judge(result: RunResult) -> list[dict[str, Any]]:
    """The dataset rows but for the judge's name and rationale (which name who labelled)."""
    return [{k: v for k, v in r.items() if k not in ("judge", "rationale")} for r in result.rows]


def human_judge_spec(tokens_file: Path, **human: Any) -> dict[str, Any]:
    """``judge`` of a human run whose tokens are in ``tokens_file``."""
    return {"kind": "human", "human": {"tokensFile": str(tokens_file), **human}}


@dataclass
class LiveRun:
    """An embedded run in a thread with its labelling page on loopback."""

    run: ActiveRun
    out: Path
    roles: Roles
    judge: HumanJudge
    page: PageServer
    thread: threading.Thread | None = None
    result: list[RunResult] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)
    resume: bool = False

    @property
    def url(self) -> str:
        return self.page.url

    def start(self) -> LiveRun:
        def target() -> None:
            try:
                self.result.append(
                    execute(
                        self.run,
                        output=str(self.out),
                        resume=self.resume,
                        roles=self.roles,
                        console=Console(quiet=True),
                    )
                )
            except BaseException as e:
                self.error.append(e)

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        return self

    def finish(self, timeout: float = 300) -> RunResult:
        assert self.thread is not None
        self.thread.join(timeout)
        self.page.stop()
        if self.error:
            raise self.error[0]
        assert self.result, "the run did not finish"
        return self.result[0]


def live_run(manifest_path: Path, out: Path, *, resume: bool = False) -> LiveRun:
    """Build the run's roles, serve its page on a free loopback port (the run not started)."""
    run = load_activerun(manifest_path)
    roles, _, _ = build_embedded_roles(run, out, manifest_path.parent)
    judge = human_judge_of(roles)
    return LiveRun(run, out, roles, judge, PageServer(judge).start(), resume=resume)
