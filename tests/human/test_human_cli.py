"""``prefloop run`` and ``prefloop validate`` refuse a human-judged manifest up front (there is no
page to label on), naming ``prefloop judge-ui`` and service mode, and write nothing;
``validate --for judge-ui`` accepts it and checks the annotators' tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from _human_run import human_judge_spec, manifest, write_pool

from prefloop.cli import main


@pytest.fixture
def human_manifest(
    repo_root: Path, tmp_path: Path, tokens_file: Path, human_feature_cache: Path
) -> Path:
    pool = tmp_path / "pool.jsonl"
    write_pool(repo_root, pool)
    return manifest(tmp_path, pool, human_feature_cache, human_judge_spec(tokens_file))


def test_run_with_a_human_judge_fails_before_writing(
    human_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["run", str(human_manifest), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "judge.kind: human" in err
    assert "prefloop judge-ui" in err and "prefloop serve judge" in err
    assert not out.exists()


def test_validate_refuses_it_for_run_and_accepts_it_for_judge_ui(
    human_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(human_manifest)]) == 2
    err = capsys.readouterr().err
    assert "prefloop judge-ui" in err and "--for judge-ui" in err
    assert main(["validate", str(human_manifest), "--for", "judge-ui"]) == 0
    assert "is valid" in capsys.readouterr().err
    # the same manifest is fine for a driver of services (the judge service holds the tokens)
    assert main(["validate", str(human_manifest), "--for", "services"]) == 0
    capsys.readouterr()

    # for the page, the annotators' tokens are checked too, naming the field
    no_tokens = tmp_path / "missing-tokens.yaml"
    bad = ["--set", f"spec.judge.human.tokensFile={no_tokens}"]
    assert main(["validate", str(human_manifest), "--for", "judge-ui", *bad]) == 2
    assert f"judge.human.tokensFile {no_tokens}" in capsys.readouterr().err


def test_serve_judge_needs_the_ui_port_and_working_tokens(
    human_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state-dir", str(tmp_path / "state"), "--port", "0"]
    with pytest.raises(SystemExit) as no_ui:
        main(["serve", "judge", str(human_manifest), *state])
    assert no_ui.value.code == 2
    assert "--ui-port" in capsys.readouterr().err

    bad = ["--set", f"spec.judge.human.tokensFile={tmp_path / 'none.yaml'}", "--ui-port", "0"]
    with pytest.raises(SystemExit) as no_tokens:
        main(["serve", "judge", str(human_manifest), *state, *bad])
    assert no_tokens.value.code == 2
    err = capsys.readouterr().err
    assert "prefloop serve judge: error: judge.human.tokensFile" in err and "Traceback" not in err


def test_up_starts_the_judge_service_with_its_page(human_manifest: Path, tmp_path: Path) -> None:
    import argparse

    from prefloop.rpc.up import add_up_parser, serve_command
    from prefloop.spec import load_activerun

    parser = argparse.ArgumentParser()
    add_up_parser(parser.add_subparsers())
    args = parser.parse_args(["up", str(human_manifest), "--ui-port", "8090"])
    run = load_activerun(human_manifest)
    judge = serve_command("judge", args, 7004, tmp_path, None, None, run=run)
    assert judge[judge.index("--ui-port") + 1] == "8090"
    assert judge[judge.index("--ui-host") + 1] == "127.0.0.1"
    assert "--ui-port" not in serve_command("trainer", args, 7005, tmp_path, None, None, run=run)
    oracle = load_activerun(human_manifest, ["spec.judge.kind=oracle", "spec.judge.human=null"])
    assert "--ui-port" not in serve_command("judge", args, 7004, tmp_path, None, None, run=oracle)
