"""Structural JSON schemas for the Prometheus Operator objects the chart renders.

No package on PyPI ships the monitoring.coreos.com CRDs for Python 3.11 (the cloudcoil models
need Python >= 3.14), so these schemas are written here from the v1 API reference, covering
the fields the chart sets: the names, types and patterns Prometheus Operator's CRD enforces
(duration pattern, relabel actions, label-name pattern, label selectors). Unknown fields are
rejected, so a typo such as ``podMetricEndpoints`` fails here as it would on the cluster.
"""

from __future__ import annotations

from typing import Any

DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
    r"(([0-9]+)ms)?)$",
}
LABEL_NAME = {"type": "string", "pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$"}
RELABEL_ACTIONS = [
    f(a) for a in ["replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep",
                   "lowercase", "uppercase", "keepequal", "dropequal"]
    for f in (str.lower, str.capitalize)
]  # fmt: skip
RELABEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sourceLabels": {"type": "array", "items": LABEL_NAME},
        "separator": {"type": "string"},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "modulus": {"type": "integer", "minimum": 0},
        "replacement": {"type": "string"},
        "action": {"type": "string", "enum": RELABEL_ACTIONS},
    },
}
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string"},
                    "operator": {
                        "type": "string",
                        "enum": ["In", "NotIn", "Exists", "DoesNotExist"],
                    },
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
NAMESPACE_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "any": {"type": "boolean"},
        "matchNames": {"type": "array", "items": {"type": "string"}},
    },
}
ENDPOINT_COMMON: dict[str, Any] = {
    "path": {"type": "string"},
    "scheme": {"type": "string", "enum": ["http", "https", "HTTP", "HTTPS"]},
    "params": {"type": "object"},
    "interval": DURATION,
    "scrapeTimeout": DURATION,
    "honorLabels": {"type": "boolean"},
    "honorTimestamps": {"type": "boolean"},
    "relabelings": {"type": "array", "items": RELABEL},
    "metricRelabelings": {"type": "array", "items": RELABEL},
}
METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _monitor(kind: str, endpoints_key: str, endpoint_props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", endpoints_key],
                "additionalProperties": False,
                "properties": {
                    "jobLabel": {"type": "string"},
                    "targetLabels": {"type": "array", "items": {"type": "string"}},
                    "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                    "sampleLimit": {"type": "integer", "minimum": 0},
                    "selector": LABEL_SELECTOR,
                    "namespaceSelector": NAMESPACE_SELECTOR,
                    endpoints_key: {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {**ENDPOINT_COMMON, **endpoint_props},
                        },
                    },
                },
            },
        },
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": _monitor(
        "ServiceMonitor",
        "endpoints",
        {"port": {"type": "string"}, "targetPort": {"type": ["string", "integer"]}},
    ),
    "PodMonitor": _monitor(
        "PodMonitor",
        "podMetricsEndpoints",
        {"port": {"type": "string"}, "portNumber": {"type": "integer", "minimum": 1}},
    ),
}
"""kind -> JSON schema of the whole object."""
