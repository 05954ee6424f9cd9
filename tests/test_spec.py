"""The ActiveRun spec: defaults, camelCase YAML, errors that name the field, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prefloop.spec import ActiveRun, SpecError, load_activerun, parse_activerun


def _manifest(**spec: object) -> dict[str, object]:
    return {
        "apiVersion": "prefloop.dev/v1alpha1",
        "kind": "ActiveRun",
        "metadata": {"name": "t"},
        "spec": spec,
    }


def test_quickstart_parses_with_camel_case(repo_root: Path) -> None:
    run = load_activerun(repo_root / "examples" / "quickstart.yaml")
    assert run.metadata.name == "quickstart"
    assert run.spec.batch_size == 16
    assert run.spec.reward_model.embedder.max_length_tokens == 256
    assert run.spec.acquisition.method == "delta_ucb"
    assert run.spec.trainer.epochs_per_round == 20
    # round trip: to_yaml is camelCase and parses to the same object
    again = parse_activerun(yaml.safe_load(run.to_yaml()))
    assert again == run


def test_defaults_fill_every_field() -> None:
    run = parse_activerun(_manifest())
    assert run.spec.seed == 0
    assert run.spec.reward_model.head.kind == "ensemble"
    assert run.spec.judge.tie_policy == "first"
    assert run.spec.trainer.anchor.base == pytest.approx(0.999)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"batchSize": 0}, "spec.batchSize: Input should be greater than or equal to 1"),
        ({"acquisition": {"method": "dtss"}}, "unknown acquisition method 'dtss'"),
        ({"acquisition": {"method": "delta_ucb", "params": {"betta": 1}}}, "['betta']"),
        ({"rewardModel": {"head": {"kind": "gp"}}}, "spec.rewardModel.head.kind"),
        ({"budgett": {}}, "spec.budgett: unknown field"),
        ({"responses": {"source": "models"}}, "at least two entries in `models`"),
        (
            {
                "responses": {
                    "source": "models",
                    "models": [{"name": "a", "path": "x"}, {"name": "b", "path": "y"}],
                }
            },
            "spec: judge.kind: oracle reveals stored judge scores",
        ),
        ({"rewardModel": {"embedder": {"kind": "hf_last_token"}}}, "needs `modelPath`"),
        ({"rewardModel": {"head": {"preferenceDim": 3}}}, "spec.rewardModel.head.preferenceDim"),
        ({"acquisition": {"candidatePoolSize": 100}}, "apply only with acquisition.scope: pool"),
        ({"acquisition": {"diversity": "clusters"}}, "apply only with acquisition.scope: pool"),
        ({"acquisition": {"scope": "pool", "method": "adpo"}}, "scope: pool cannot run"),
        (
            {"acquisition": {"scope": "pool", "method": "ae_dpo", "diversity": "clusters"}},
            "diversity: clusters applies to per-prompt rules",
        ),
        ({"acquisition": {"scope": "pooled"}}, "spec.acquisition.scope"),
        (
            {
                "evaluation": {"shadowRandom": True},
                "judge": {
                    "kind": "pairwise",
                    "llm": {
                        "backend": "openai",
                        "endpoint": {"baseUrl": "http://h:1/v1", "model": "m"},
                    },
                },
            },
            "evaluation.shadowRandom needs judge.kind: oracle",
        ),
        (
            {"batchSize": 32, "acquisition": {"scope": "pool", "candidatePoolSize": 16}},
            "candidatePoolSize (16) is smaller than batchSize (32)",
        ),
        (
            {
                "acquisition": {"scope": "pool"},
                "judge": {
                    "kind": "pairwise",
                    "llm": {
                        "backend": "openai",
                        "endpoint": {"baseUrl": "http://h:1/v1", "model": "m"},
                    },
                },
                "responses": {
                    "source": "models",
                    "models": [{"name": "a", "path": "x"}, {"name": "b", "path": "y"}],
                },
            },
            "needs responses.source: precomputed",
        ),
    ],
)
def test_errors_name_the_field(spec: dict[str, object], needle: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_activerun(_manifest(**spec), source="m.yaml")
    assert needle in str(e.value)
    assert str(e.value).startswith("m.yaml")


def test_wrong_kind_and_name() -> None:
    bad = _manifest()
    bad["kind"] = "Job"
    with pytest.raises(SpecError, match="kind"):
        parse_activerun(bad)
    bad = _manifest()
    bad["metadata"] = {"name": "Not_A_DNS_Label"}
    with pytest.raises(SpecError, match=r"metadata\.name"):
        parse_activerun(bad)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("apiVersion: prefloop.dev/v1alpha1\nkind: ActiveRun\nspec:\n  seed: [1,\n")
    with pytest.raises(SpecError, match=r"bad.yaml:\d+: not valid YAML"):
        load_activerun(p)


def test_overrides(repo_root: Path) -> None:
    run = load_activerun(
        repo_root / "examples" / "quickstart.yaml",
        ["spec.acquisition.method=drts", "spec.budget.maxAnnotations=10", "spec.seed=7"],
    )
    assert run.spec.acquisition.method == "drts"
    assert run.spec.budget.max_annotations == 10
    assert run.spec.seed == 7
    with pytest.raises(SpecError, match="PATH=VALUE"):
        load_activerun(repo_root / "examples" / "quickstart.yaml", ["spec.seed"])


def test_batch_scope_keeps_the_fingerprint_of_runs_before_pool_scope(repo_root: Path) -> None:
    """Checkpoints written before ``acquisition.scope`` existed still resume (values computed
    on the code before it); pool scope is a different configuration."""
    earlier = ["spec.rewardModel.sourceModels.enabled=false"]  # the quickstart before it
    quickstart = load_activerun(repo_root / "examples" / "quickstart.yaml", earlier)
    assert quickstart.fingerprint() == "27d0ad7b83d37a6d"
    now = load_activerun(repo_root / "examples" / "quickstart.yaml")
    assert now.spec.reward_model.source_models.enabled
    assert now.fingerprint() != quickstart.fingerprint()
    batch = parse_activerun(_manifest(seed=1)).fingerprint()
    assert parse_activerun(_manifest(seed=1, acquisition={"scope": "batch"})).fingerprint() == batch
    pool = parse_activerun(_manifest(seed=1, acquisition={"scope": "pool"}))
    sized = parse_activerun(
        _manifest(seed=1, acquisition={"scope": "pool", "candidatePoolSize": 100})
    )
    assert len({pool.fingerprint(), sized.fingerprint(), batch}) == 3
    head = {"numHeads": 4, "bootstrap": True}
    boot = parse_activerun(_manifest(seed=1, rewardModel={"head": head})).fingerprint()
    assert boot != batch  # a later field away from its neutral value is a new configuration


def test_fingerprint_ignores_budget_only() -> None:
    a = parse_activerun(_manifest(seed=1))
    b = parse_activerun(_manifest(seed=1, budget={"maxAnnotations": 5}))
    c = parse_activerun(_manifest(seed=2))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert isinstance(a, ActiveRun)
