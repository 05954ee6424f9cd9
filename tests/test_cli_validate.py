"""``prefloop validate`` checks the data too, and nothing is written before the data validates.

Issue 7, item 9: validate never opened the prompts file; ``run`` wrote ``activerun.yaml`` before
loading the prompts; a rule needing another head passed validate; an unreachable budget stopped
early without a word; a bad run name got a raw regex.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefloop.cli import main
from prefloop.engine.round_engine import split_prompts
from prefloop.spec import load_activerun

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "alpacaeval" / "sample100.jsonl"


def _validate(*overrides: str, fmt: str = "text") -> int:
    args = ["validate", str(QUICKSTART), "-o", fmt]
    for ov in overrides:
        args += ["--set", ov]
    return main(args)


def _broken_copy(tmp_path: Path) -> Path:
    """Five rows of the sample: line 2 is not JSON, line 5 repeats line 1's prompt_id."""
    lines = SAMPLE.read_text().splitlines()[:5]
    lines[1] = lines[1][:40]
    row = json.loads(lines[4])
    row["prompt_id"] = json.loads(lines[0])["prompt_id"]
    lines[4] = json.dumps(row)
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_validate_fails_on_a_missing_prompts_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert _validate(f"spec.prompts.path={missing}") == 2
    assert f"{missing}: no such file or directory" in capsys.readouterr().err


def test_validate_lists_every_reader_problem_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _broken_copy(tmp_path)
    assert _validate(f"spec.prompts.path={data}") == 2
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert f"{data}:2: invalid JSON" in err
    assert f"{data}:5: prompt_id" in err and "duplicates the one at" in err


def test_validate_checks_scores_the_oracle_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows the reader accepts but the stored-score oracle cannot judge, all listed at once."""
    lines = SAMPLE.read_text().splitlines()[:6]
    for index, (slot, score) in {2: (1, None), 5: (0, 7.5)}.items():
        row = json.loads(lines[index])
        row["responses"][slot]["score"] = score
        lines[index] = json.dumps(row)
    data = tmp_path / "scores.jsonl"
    data.write_text("\n".join(lines) + "\n")
    assert _validate(f"spec.prompts.path={data}") == 2
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert f"{data}:3: responses[1].score is None" in err
    assert f"{data}:6: responses[0].score is 7.5, outside [0, 1]" in err
    # with the identity transform 7.5 is a fine rating, the missing score is still an error
    assert _validate(f"spec.prompts.path={data}", "spec.judge.scoreTransform=identity") == 2
    err = capsys.readouterr().err
    assert "1 problem" in err and ":6:" not in err


def test_run_with_bad_data_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    data = _broken_copy(tmp_path)
    code = main(
        ["run", str(QUICKSTART), "--output", str(out), "--set", f"spec.prompts.path={data}"]
    )
    assert code == 2
    assert "broken.jsonl:2" in capsys.readouterr().err
    assert not out.exists()


def test_a_rule_needing_the_bgpm_head_fails_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert _validate("spec.acquisition.method=bgpm_mv", "spec.acquisition.params={}") == 2
    err = capsys.readouterr().err
    assert "'bgpm_mv' needs pairwise preference scores" in err
    assert "set rewardModel.head.kind: bgpm" in err
    assert (
        _validate(
            "spec.acquisition.method=bgpm_mv",
            "spec.acquisition.params={}",
            "spec.rewardModel.head.kind=bgpm",
        )
        == 0
    )


def test_a_bad_run_name_says_what_is_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    assert _validate("metadata.name=bgpm_mv") == 2
    err = capsys.readouterr().err
    assert (
        "lowercase letters, digits and '-', starting and ending with a letter or digit, "
        "at most 52 characters" in err
    )
    assert "e.g. 'bgpm-mv'" in err
    assert "should match pattern" not in err
    assert _validate("metadata.name=" + "a" * 53) == 2
    assert "at most 52 characters" in capsys.readouterr().err


def test_validate_warns_about_a_budget_the_pool_cannot_fill(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """100 prompts, 20 held out, 1 pair each: 100 annotations are 20 out of reach."""
    assert _validate("spec.budget.maxAnnotations=100") == 0
    err = capsys.readouterr().err
    assert "warning: budget.maxAnnotations 100 cannot be reached" in err
    assert "at most 80 pairs" in err and "at least 20 short" in err
    assert _validate("spec.budget.maxAnnotations=80") == 0
    assert "warning" not in capsys.readouterr().err
    # two pairs per prompt make 160 reachable; three rounds of 16 prompts make it 48
    assert _validate("spec.budget.maxAnnotations=100", "spec.pairsPerPrompt=2") == 0
    assert "warning" not in capsys.readouterr().err
    assert _validate("spec.budget.maxAnnotations=100", "spec.budget.maxRounds=3") == 0
    err = capsys.readouterr().err
    assert "at most 48 pairs" in err and "round budget exhausted" in err
    # the pair budget (every pair entering the dataset) is bounded the same way
    assert _validate("spec.budget.maxAnnotations=null", "spec.budget.maxPairs=90") == 0
    err = capsys.readouterr().err
    assert "warning: budget.maxPairs 90 cannot be reached" in err and "at least 10 short" in err


def test_validate_warns_when_source_strengths_meet_a_rule_they_hurt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The quickstart's source-model strengths with InfoMax measured worse: said before a run."""
    assert _validate("spec.acquisition.method=infomax") == 0
    err = capsys.readouterr().err
    assert "warning: rewardModel.sourceModels is on with acquisition.method infomax" in err
    assert "spec.rewardModel.sourceModels.enabled=false" in err
    assert (
        _validate("spec.acquisition.method=infomax", "spec.rewardModel.sourceModels.enabled=false")
        == 0
    )
    assert "sourceModels" not in capsys.readouterr().err
    assert _validate() == 0  # the quickstart's own DeltaUCB: no warning
    assert "warning" not in capsys.readouterr().err


def test_the_bound_counts_the_pairs_a_prompt_has(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An offline pair file has one pair per prompt, whatever pairsPerPrompt asks."""
    from prefloop.engine.preflight import heldout_count

    pairs = repo_root / "data" / "hh_rlhf" / "harmless_dev.jsonl"
    n = sum(1 for line in pairs.read_text().splitlines() if line.strip())
    pool = n - heldout_count(n, 0.2)
    overrides = [f"spec.prompts.path={pairs}", "spec.pairsPerPrompt=3"]
    assert _validate(*overrides, f"spec.budget.maxAnnotations={pool}") == 0
    assert "warning" not in capsys.readouterr().err
    assert _validate(*overrides, f"spec.budget.maxAnnotations={pool + 1}") == 0
    assert f"at most {pool} pairs" in capsys.readouterr().err


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.2, 0.5, 0.99])
def test_heldout_count_matches_the_engine_split(fraction: float) -> None:
    from prefloop.engine.preflight import heldout_count

    for n in (1, 2, 3, 7, 10, 99, 100):
        run = load_activerun(QUICKSTART, [f"spec.evaluation.heldoutFraction={fraction}"])
        items = list(range(n))
        _, heldout = split_prompts(run, items)  # type: ignore[arg-type]
        assert heldout_count(n, fraction) == len(heldout)
