"""A small dict-in, dict-out client for the objects the operator and the driver touch.

The official ``kubernetes`` client does the transport (configuration, TLS, bearer tokens from
the pod's ServiceAccount or a kubeconfig); this module only builds the REST paths, so every
kind is handled the same way and the objects stay the plain dicts :mod:`children` builds
(no conversion to and from the generated model classes). "Not found" reads as None, "already
exists" on create as None, so callers stay idempotent.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

KINDS: dict[str, tuple[str, str]] = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "Service": ("/api/v1", "services"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Job": ("/apis/batch/v1", "jobs"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "ActiveRun": ("/apis/prefloop.dev/v1alpha1", "activeruns"),
    "KopfPeering": ("/apis/kopf.dev/v1", "kopfpeerings"),
}
"""Kind -> (API prefix, plural) of every kind used here (all namespaced)."""


def load_config() -> None:
    """The pod's ServiceAccount in a cluster, else ``$KUBECONFIG`` / ``~/.kube/config``."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


class Kube:
    """REST calls on namespaced objects, as dicts."""

    def __init__(
        self, api_client: client.ApiClient | None = None, user_agent: str = "prefloop-operator"
    ) -> None:
        self.api = api_client or client.ApiClient()
        self.api.user_agent = user_agent  # who asked, in the API server's audit log

    def _path(self, kind: str, namespace: str, name: str | None = None) -> str:
        prefix, plural = KINDS[kind]
        path = f"{prefix}/namespaces/{namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One request; the decoded JSON answer. Raises ``ApiException`` on an error status."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        _, url, header_params, serialized, post = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(method, url, header_params, serialized, post)
        data = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return json.loads(data) if data else None

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            obj: dict[str, Any] = self.call("GET", self._path(kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def list(self, kind: str, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        """Objects of ``kind`` in the namespace matching the label selector."""
        query = [("labelSelector", label_selector)] if label_selector else []
        answer = self.call("GET", self._path(kind, namespace), query=query)
        items: list[dict[str, Any]] = answer.get("items") or []
        return items

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create ``obj``; None when an object of that name exists already."""
        meta = obj["metadata"]
        try:
            made: dict[str, Any] = self.call(
                "POST", self._path(obj["kind"], meta["namespace"]), body=obj
            )
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
        return made

    def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        body: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge-patch (``None`` values delete keys); ``subresource="status"`` for status."""
        path = self._path(kind, namespace, name) + (f"/{subresource}" if subresource else "")
        patched: dict[str, Any] = self.call(
            "PATCH", path, body=body, content_type="application/merge-patch+json"
        )
        return patched

    def replace(self, obj: dict[str, Any], resource_version: str) -> dict[str, Any]:
        """PUT the whole object (what it does not say is removed), guarded by the version."""
        meta = obj["metadata"]
        body = {**obj, "metadata": {**meta, "resourceVersion": resource_version}}
        replaced: dict[str, Any] = self.call(
            "PUT", self._path(obj["kind"], meta["namespace"], meta["name"]), body=body
        )
        return replaced

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete with background propagation (the Job's pods go too); False if already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            self.call("DELETE", self._path(kind, namespace, name), body=body)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
