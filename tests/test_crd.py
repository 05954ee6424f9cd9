"""The CRD is generated from the spec, committed in the chart, and every example validates."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from prefloop.crd import activerun_crd
from prefloop.spec import load_activerun


def _to_jsonschema(node: Any) -> Any:
    """OpenAPI v3.0 -> JSON Schema: nullable, boolean exclusive bounds, k8s extensions."""
    if isinstance(node, list):
        return [_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(key) is True:
            out[key] = out.pop(bound)
    if "properties" in out and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False  # the API server prunes; we want to see typos
    return out


def _schema() -> dict[str, Any]:
    crd = activerun_crd()
    return _to_jsonschema(copy.deepcopy(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]))


def test_committed_crd_is_current(repo_root: Path) -> None:
    committed = yaml.safe_load((repo_root / "charts/prefloop/crds/activerun.yaml").read_text())
    assert committed == activerun_crd(), "run `prefloop crd > charts/prefloop/crds/activerun.yaml`"


def test_crd_is_structural() -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            assert node.get("additionalProperties") is not False, path
            assert "$ref" not in node and "anyOf" not in node, path
            if "properties" in node:
                assert node.get("type") == "object", path
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(activerun_crd()["spec"]["versions"][0]["schema"], "schema")


@pytest.mark.parametrize("example", sorted(Path(__file__).parents[1].glob("examples/*.yaml")))
def test_examples_validate_against_crd(example: Path) -> None:
    manifest = yaml.safe_load(example.read_text())
    jsonschema.validate(manifest, _schema())
    load_activerun(example)  # and against the typed spec


def test_crd_rejects_a_typo() -> None:
    manifest = {
        "apiVersion": "prefloop.dev/v1alpha1",
        "kind": "ActiveRun",
        "spec": {"batchSise": 3},
    }
    with pytest.raises(jsonschema.ValidationError, match="batchSise"):
        jsonschema.validate(manifest, _schema())


def test_spec_reference_doc_is_current(repo_root: Path) -> None:
    from prefloop.spec_docs import render_spec_reference

    committed = (repo_root / "docs" / "spec.md").read_text()
    assert committed == render_spec_reference(), "run `python -m prefloop.spec_docs > docs/spec.md`"


def test_methods_table_doc_is_current(repo_root: Path) -> None:
    from prefloop.spec_docs import render_methods_reference

    committed = (repo_root / "docs" / "methods-table.md").read_text()
    assert committed == render_methods_reference(), (
        "run `python -m prefloop.spec_docs methods > docs/methods-table.md`"
    )
