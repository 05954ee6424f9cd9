"""What the chart deploys: operator, RBAC, shared services, monitoring, policies, hooks.

Each test renders the chart with a real helm and asserts a property a user relies on: the
operator runs ``prefloop operator`` with its image in PREFLOOP_IMAGE; RBAC grants exactly the
verbs the operator needs, cluster-wide only for the watch; the Prometheus Operator objects
select what the operator labels; bad values fail with the key at fault.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from chart_helpers import CHART, find, helm, render, scenario


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    return dict(spec["containers"][0])


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_operator_runs_the_chart_image_and_exposes_healthz() -> None:
    objects = scenario("default")
    (deployment,) = find(objects, "Deployment", "rel-prefloop-operator")
    container = _container(deployment)
    assert container["image"] == "prefloop:0.1.0"
    assert container["args"][0] == "operator"
    env = _env(container)
    assert env["PREFLOOP_IMAGE"] == container["image"]
    assert env["PREFLOOP_GPU_IMAGE"] == "prefloop:0.1.0-cuda"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["PREFLOOP_RECONCILE_SECONDS"] == "10"
    assert "PREFLOOP_KAFKA_BOOTSTRAP" not in env
    kafka = render(sets=("operator.kafkaBootstrap=kafka:9092",))
    with_kafka = _env(_container(find(kafka, "Deployment", "rel-prefloop-operator")[0]))
    assert with_kafka["PREFLOOP_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert container["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]
    probe = container["livenessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/healthz", "health")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "operator"


def test_image_overrides_reach_operator_and_children() -> None:
    digest = "sha256:" + "a" * 64
    objects = render(sets=("global.imageRegistry=reg.example", f"image.digest={digest}"))
    container = _container(find(objects, "Deployment", "rel-prefloop-operator")[0])
    assert container["image"] == f"reg.example/prefloop@{digest}"
    assert _env(container)["PREFLOOP_IMAGE"] == container["image"]


def _rules(obj: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in obj["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def operator_needs() -> dict[tuple[str, str], set[str]]:
    """What the operator's Kubernetes client touches in a run's namespace, as RBAC rules.

    Derived from the operator's own code (``prefloop_operator.kube.KINDS`` and the client's
    methods), so a kind or a call the operator starts to use fails this test until the chart
    grants it.
    """
    from prefloop_operator import kube

    verb_of = {"get": "get", "list": "list", "create": "create", "patch": "patch",
               "replace": "update", "delete": "delete"}  # fmt: skip
    methods = {m for m in verb_of if callable(getattr(kube.Kube, m, None))}
    assert methods == set(verb_of), "the operator's client changed: update the chart's Role"
    needs = {}
    for kind, (prefix, plural) in kube.KINDS.items():
        if kind in ("ActiveRun", "KopfPeering"):  # granted cluster-wide, in the ClusterRole
            continue
        group = "" if prefix == "/api/v1" else prefix.split("/")[2]
        needs[(group, plural)] = set(verb_of.values())
    return needs


def test_rbac_is_least_privilege() -> None:
    objects = render(("ci/shared-services-values.yaml",))
    (cluster_role,) = find(objects, "ClusterRole")
    peering = {"get", "list", "watch", "patch", "create"}
    assert _rules(cluster_role) == {
        ("prefloop.dev", "activeruns"): {"get", "list", "watch", "patch"},
        ("prefloop.dev", "activeruns/status"): {"get", "patch", "update"},
        ("prefloop.dev", "activeruns/finalizers"): {"update"},
        ("", "events"): {"create", "patch"},
        ("events.k8s.io", "events"): {"create", "patch"},
        ("kopf.dev", "clusterkopfpeerings"): peering,
        ("kopf.dev", "kopfpeerings"): peering,
    }
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["prefloop-runs", "research"]
    for role in roles:
        assert _rules(role) == operator_needs()
    for binding in find(objects, "RoleBinding") + find(objects, "ClusterRoleBinding"):
        (subject,) = binding["subjects"]
        assert subject == {
            "kind": "ServiceAccount",
            "name": "rel-prefloop-operator",
            "namespace": "prefloop-system",
        }


def test_operator_can_grant_what_the_driver_role_holds() -> None:
    """Kubernetes refuses a Role that grants more than its creator holds (no escalation)."""
    from prefloop_operator import children

    granted = _rules(find(scenario("default"), "Role")[0])
    for obj in children.driver_access(_example_run(), children.Owner("r", "ns", "uid")):
        if obj["kind"] != "Role":
            continue
        for rule in obj["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    assert set(rule["verbs"]) <= granted[(group, resource)], rule


def _example_run() -> Any:
    from prefloop.spec import load_activerun

    return load_activerun(CHART.parents[1] / "examples" / "quickstart.yaml")


def test_rbac_cluster_wide_children_and_no_peering() -> None:
    objects = render(sets=("rbac.clusterWideChildren=true", "operator.peering.enabled=false"))
    assert find(objects, "Role") == []
    names = sorted(r["metadata"]["name"] for r in find(objects, "ClusterRole"))
    assert names == ["rel-prefloop-children", "rel-prefloop-operator"]
    operator_rules = _rules(find(objects, "ClusterRole", "rel-prefloop-operator")[0])
    assert not any(group == "kopf.dev" for group, _ in operator_rules)
    assert find(objects, "ClusterKopfPeering") == []
    container = _container(find(objects, "Deployment", "rel-prefloop-operator")[0])
    assert "--standalone" in container["args"]


def test_peering_object_is_a_post_install_hook_with_its_crds() -> None:
    objects = scenario("default")
    (peering,) = find(objects, "ClusterKopfPeering")
    assert peering["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    crds = {c["metadata"]["name"] for c in find(objects, "CustomResourceDefinition")}
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= crds
    container = _container(find(objects, "Deployment", "rel-prefloop-operator")[0])
    assert f"--peering={peering['metadata']['name']}" in container["args"]


def test_shared_services_are_five_roles_on_named_ports() -> None:
    objects = scenario("shared-services")
    for role in ("generation", "reward", "acquisition", "judge", "trainer"):
        (deployment,) = find(objects, "Deployment", f"rel-prefloop-{role}")
        container = _container(deployment)
        assert container["args"][:3] == ["serve", role, "/etc/prefloop/activerun.yaml"]
        assert "--host=0.0.0.0" in container["args"]
        assert "--kafka=kafka.kafka.svc:9092" in container["args"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": 8000, "metrics": 9090}
        assert container["readinessProbe"] == {"grpc": {"port": 8000}, "periodSeconds": 10}
        (service,) = find(objects, "Service", f"rel-prefloop-{role}")
        assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == ports
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert service["spec"]["selector"] == selector
        assert selector["app.kubernetes.io/component"] == role
    judge = _container(find(objects, "Deployment", "rel-prefloop-judge")[0])
    assert judge["envFrom"] == [{"secretRef": {"name": "judge-api-key"}}]
    (manifest,) = find(objects, "ConfigMap", "rel-prefloop-shared-manifest")
    assert "name: shared" in manifest["data"]["activerun.yaml"]


def test_gpu_values_put_generation_on_the_gpu_pool() -> None:
    objects = scenario("gpu")
    generation = find(objects, "Deployment", "rel-prefloop-generation")[0]["spec"]["template"]
    container = generation["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/prefloop/prefloop-cuda:0.1.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert generation["spec"]["runtimeClassName"] == "nvidia"
    assert generation["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert generation["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    reward = _container(find(objects, "Deployment", "rel-prefloop-reward")[0])
    assert reward["resources"]["limits"]["nvidia.com/gpu"] == 1  # gpu: true, no count given
    acquisition = _container(find(objects, "Deployment", "rel-prefloop-acquisition")[0])
    assert acquisition["image"] == "registry.example.com/prefloop/prefloop:0.1.0"
    assert "nvidia.com/gpu" not in acquisition["resources"].get("limits", {})


def test_service_monitor_selects_the_metrics_ports_with_the_release_label() -> None:
    objects = scenario("monitoring")
    (monitor,) = find(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "monitoring"
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        s for s in find(objects, "Service")
        if selector.items() <= s["metadata"]["labels"].items()
        and any(p["name"] == "metrics" for p in s["spec"]["ports"])
    ]  # fmt: skip
    assert len(scraped) == 5  # the five shared role services


def test_pod_monitor_selects_the_operators_run_pods() -> None:
    (monitor,) = find(scenario("monitoring"), "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "monitoring"
    spec = monitor["spec"]
    assert spec["selector"] == {
        "matchLabels": {"app.kubernetes.io/managed-by": "prefloop-operator"}
    }
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert targets["run"] == ["__meta_kubernetes_pod_label_prefloop_dev_run"]
    assert targets["role"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]


def test_monitors_need_the_prometheus_operator_api() -> None:
    objects = render(("ci/monitoring-values.yaml",), api_versions=())
    assert find(objects, "ServiceMonitor") == find(objects, "PodMonitor") == []
    notes = helm("install", "rel", ".", "--dry-run=client", "-f", "ci/monitoring-values.yaml")
    assert "no\nmonitoring.coreos.com/v1 API" in notes.stdout


def test_dashboard_configmap_carries_the_dashboard_file() -> None:
    (configmap,) = find(scenario("monitoring"), "ConfigMap", "rel-prefloop-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    shipped = json.loads((CHART / "dashboards" / "prefloop.json").read_text())
    assert json.loads(configmap["data"]["prefloop.json"]) == shipped


def test_network_policies_cover_operator_services_and_run_pods() -> None:
    objects = scenario("shared-services")
    policies = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p
        for p in find(objects, "NetworkPolicy")
    }
    assert set(policies) == {
        ("prefloop-system", "rel-prefloop-operator"),
        ("prefloop-system", "rel-prefloop-shared-services"),
        ("prefloop-runs", "rel-prefloop-runs"),
        ("research", "rel-prefloop-runs"),
    }
    runs = policies[("research", "rel-prefloop-runs")]["spec"]
    assert runs["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/managed-by": "prefloop-operator"}
    }
    assert [r["ports"][0]["port"] for r in runs["ingress"]] == ["grpc", "metrics"]
    operator = policies[("prefloop-system", "rel-prefloop-operator")]["spec"]
    (rule,) = operator["ingress"]
    peer = rule["from"][0]["podSelector"]["matchLabels"]
    (test_pod,) = find(objects, "Pod")
    assert peer.items() <= test_pod["metadata"]["labels"].items()  # the test hook gets through
    assert find(render(sets=("networkPolicy.enabled=false",)), "NetworkPolicy") == []


def test_helm_test_hook_checks_operator_and_services() -> None:
    objects = scenario("shared-services")
    (pod,) = find(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    (service,) = find(objects, "Service", "rel-prefloop-operator")
    assert (
        f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/healthz"
        in script
    )
    assert '"rel-prefloop-judge:8000"' in script
    compile(script, "test-health", "exec")  # the embedded Python is valid


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("operator.replicaCount=-1",), "/operator/replicaCount"),
        (("image.pullPolicy=Sometimes",), "/image/pullPolicy"),
        (("operator.bogus=1",), "additional properties 'bogus'"),
        (("metrics.podMonitor.interval=30 seconds",), "/metrics/podMonitor/interval"),
        (("rbac.runNamespaces={Bad_NS}",), "/rbac/runNamespaces/0"),
        (("sharedServices.enabled=true",), "needs sharedServices.activeRun"),
        (("operator.replicaCount=2", "operator.peering.enabled=false"), "needs operator.peering"),
    ],
)
def test_bad_values_fail_naming_the_key(sets: tuple[str, ...], message: str) -> None:
    args = ["template", "rel", "."]
    for s in sets:
        args += ["--set", s]
    result = helm(*args, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_notes_explain_the_crd_upgrade_path() -> None:
    notes = helm("install", "rel", ".", "--dry-run=client").stdout
    assert "never upgrades (or deletes)" in notes
    assert "kubectl apply --server-side -f" in notes


def test_chart_commands_are_what_the_cli_accepts() -> None:
    """The operator's and the shared services' args parse with prefloop's own parsers."""
    import argparse

    from prefloop.cli import _serve_arguments
    from prefloop_operator.cli import add_operator_parser

    objects = render(("ci/shared-services-values.yaml",), sets=("operator.extraArgs={--verbose}",))
    top = argparse.ArgumentParser()
    add_operator_parser(top.add_subparsers(dest="command"))
    operator_args = _container(find(objects, "Deployment", "rel-prefloop-operator")[0])["args"]
    parsed = top.parse_args(operator_args)
    assert (parsed.liveness_port, parsed.peering, parsed.verbose) == (8080, "rel-prefloop", True)
    serve = argparse.ArgumentParser()
    _serve_arguments(serve)
    judge = _container(find(objects, "Deployment", "rel-prefloop-judge")[0])["args"]
    parsed = serve.parse_args(judge[1:])
    assert (parsed.role, parsed.host, parsed.port, parsed.metrics_port) == (
        "judge",
        "0.0.0.0",
        8000,
        9090,
    )
