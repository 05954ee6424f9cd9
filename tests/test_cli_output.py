"""Machine-readable output, exit codes that tell bad input from failures, and a light start.

Issue 7, item 10: no ``-o json|yaml``; exit 2 for usage errors and runtime failures alike;
``prefloop --help`` imported gRPC (and with it seconds of modules) to build the parser.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prefloop.acquisition import get_rule, rule_names
from prefloop.cli import main
from prefloop.data.errors import DataError
from prefloop.judge.base import JudgeError
from prefloop.spec import SpecError

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart.yaml"
HEAVY = ("torch", "grpc", "datasets", "transformers", "prefloop.rpc.serve", "prefloop.bench")


def test_methods_json_and_yaml_list_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods", "-o", "json"]) == 0
    rules = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rules] == rule_names()
    by_name = {r["name"]: r for r in rules}
    assert by_name["bgpm_mv"]["needs"] == ["pref"]
    assert by_name["delta_ucb"]["parameters"] == {"beta": 1.0, "pairs_per_prompt": 1}
    assert by_name["delta_qwen"]["parameters"]["model_ranking"] == []
    for r in rules:
        info = get_rule(r["name"])
        assert (r["kind"], r["paper"], r["summary"]) == (info.kind, info.paper, info.summary)
    assert main(["methods", "--output-format", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == rules
    assert main(["methods"]) == 0
    assert "delta_ucb" in capsys.readouterr().out


def test_validate_json_reports_the_data_and_the_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["validate", str(QUICKSTART), "-o", "json", "--set", "spec.budget.maxAnnotations=90"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is True
    assert out["manifest"]["metadata"]["name"] == "quickstart"
    assert out["manifest"]["spec"]["budget"]["maxAnnotations"] == 90
    data = out["data"]
    assert (data["prompts"], data["pool"], data["heldout"]) == (100, 80, 20)
    assert data["responses_per_prompt"] == {"min": 16, "max": 16}
    assert data["reachable_annotations"] == 80
    assert len(out["warnings"]) == 1 and "at least 10 short" in out["warnings"][0]


def test_validate_json_lists_errors_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "bad.jsonl"
    good = (REPO / "data/alpacaeval/sample100.jsonl").read_text().splitlines()[0]
    data.write_text(f"{good}\n{{oops\n[1, 2]\n")
    args = ["validate", str(QUICKSTART), "-o", "yaml", "--set", f"spec.prompts.path={data}"]
    assert main(args) == 2
    captured = capsys.readouterr()
    out = yaml.safe_load(captured.out)
    assert out["valid"] is False
    (error,) = out["errors"]
    assert error["source"] == "data"
    assert [p["where"] for p in error["problems"]] == [f"{data}:2", f"{data}:3"]
    assert "prefloop: error:" in captured.err

    assert main(["validate", str(QUICKSTART), "-o", "json", "--set", "spec.batchSize=0"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is False and out["errors"][0]["source"] == "manifest"
    assert "spec.batchSize" in out["errors"][0]["message"]


@pytest.mark.model
def test_exit_status_2_for_bad_input_1_for_runtime_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefloop.cli import report_error

    assert report_error(SpecError("m.yaml: spec.seed: bad")) == 2
    assert report_error(DataError("x.jsonl:3: bad row")) == 2
    assert report_error(JudgeError("the judge endpoint went away")) == 1
    err = capsys.readouterr().err
    assert "prefloop: error: JudgeError: the judge endpoint went away" in err
    assert "Traceback" not in err
    try:
        _ = 1 / 0
    except ZeroDivisionError as bug:  # not one of ours: a bug, so the traceback is kept
        assert report_error(bug) == 1
    assert "Traceback" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["run"])  # argparse: the manifest is missing
    assert usage.value.code == 2
    # a run whose output cannot be created fails at run time, after validation: exit 1
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(
        ["run", str(QUICKSTART), "--output", str(blocker / "run"), "--set", "spec.prompts.limit=4"]
    )
    assert code == 1
    assert "prefloop: error: " in capsys.readouterr().err


def test_help_documents_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "exit status:" in out and "status" in out.split("exit status:")[0]
    assert "2    usage error or invalid input" in out
    assert "1    runtime failure" in out
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out  # a subcommand's own arguments still appear
    assert "{generation,reward,acquisition,judge,trainer}" in out and "--metrics-port" in out


def _modules_after(code: str) -> list[str]:
    probe = (
        f"import json, sys\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return list(json.loads(out.splitlines()[-1]))


def test_importing_the_cli_and_printing_help_load_no_heavy_module() -> None:
    assert _modules_after("import prefloop.cli") == []
    help_code = (
        "import contextlib, io\nfrom prefloop.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['run', '--help'])"
    )
    assert _modules_after(help_code) == []
