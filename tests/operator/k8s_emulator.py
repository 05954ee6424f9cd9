"""A Kubernetes API emulator for operator tests: kmock 0.8's ``KubernetesEmulator`` plus the
server-side behaviours kopf and the client rely on.

Provenance: the ``StampingEmulator`` below is the verified recipe of the project's test
infrastructure notes (kopf 1.45.2, kubernetes client 37.0.2, kmock 0.8; it ran 15 times in a row
without a failure there), copied unchanged except for the additions marked "prefloop:"
(``metadata.generateName``, which kopf uses for Events). It uses kmock's private attributes
``_lock`` and ``_buses``, hence the exact ``kmock==0.8`` pin in the dev extra.

kmock 0.8 stores objects as plain dicts. Gaps this subclass fills (all verified necessary):
  * metadata.uid / resourceVersion / creationTimestamp / generation are never set
    -> kopf's finalizer JSON-patch carries {'op':'test','path':'/metadata/resourceVersion'}
       and fails (kmock answers HTTP 500 for a failed test op; real k8s: 422).
  * watch: replays all objects as ADDED ignoring ?resourceVersion=, and subscribes to the event
    bus only AFTER the replay has been written -> events in between are lost (race), which
    stalls kopf. Here the bus is marked under the lock before the snapshot.
  * labelSelector is ignored on list and watch.
  * PUT (replace) is not routed at all (404 'Endpoint Not Found').
  * POST answers 200, not 201: kubernetes-client 37 CustomObjectsApi.create_* then returns None.
"""

import copy
import datetime
import re
import uuid
from typing import Any, ClassVar, NamedTuple

import aiohttp.web
import kmock
from kmock._internal import (
    enums,
)  # action/method enums (also exported as kmock.action / kmock.method)


class Call(NamedTuple):
    """prefloop: one request the emulator served."""

    agent: str
    method: str
    action: str
    resource: Any
    subresource: str | None


def _parse_selector(sel: str):
    reqs = []
    for part in re.split(r",(?![^()]*\))", sel or ""):
        part = part.strip()
        if not part:
            continue
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", part):
            reqs.append((m[1], m[2], {v.strip() for v in m[3].split(",")}))
        elif m := re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", part):
            reqs.append((m[1], "!=" if m[2] == "!=" else "=", m[3]))
        elif m := re.fullmatch(r"!([\w./-]+)", part):
            reqs.append((m[1], "!", None))
        else:
            reqs.append((part, "exists", None))
    return reqs


def _match_labels(obj: dict, sel: str | None) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, val in _parse_selector(sel or ""):
        have = labels.get(key)
        if op == "=":
            ok = have == val
        elif op == "!=":
            ok = have != val
        elif op == "in":
            ok = have in val
        elif op == "notin":
            ok = have not in val
        elif op == "!":
            ok = key not in labels
        else:
            ok = key in labels
        if not ok:
            return False
    return True


def _rv(obj: dict) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class StampingEmulator(kmock.KubernetesEmulator):
    _last_rv: int = 0
    KEEP_REQUESTS = 64
    """prefloop: kmock matches every request against its whole request log, so serving gets
    slower with every request (a long operator test made it 0.3 s per call). Only the newest
    requests are kept in the log; :attr:`calls` keeps a compact record of all of them."""
    _calls: ClassVar[dict[int, list[Call]]] = {}

    @property
    def calls(self) -> list[Call]:
        """prefloop: (User-Agent, method, action, resource, subresource) of every request."""
        return self._calls.setdefault(id(self), [])

    def _next_rv(self) -> str:
        type(self)._last_rv += 1
        return str(self._last_rv)

    async def _handle(self, request):
        if request.resource is not None:
            # PUT /…/{name} (replace): kmock 0.8 has no route for it; serve it here.
            if (
                request.method == enums.method.PUT
                and request.name is not None
                and isinstance(request.data, dict)
            ):
                return await self._serve_replace(request)
            if isinstance(request.data, (dict, list)):
                rv = self._next_rv()
                if request.action == enums.action.CREATE and isinstance(request.data, dict):
                    meta = request.data.setdefault("metadata", {})
                    if "name" not in meta and meta.get("generateName"):  # prefloop: as k8s does
                        meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                    meta.setdefault("uid", str(uuid.uuid4()))
                    meta.setdefault(
                        "creationTimestamp",
                        datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    )
                    meta.setdefault("generation", 1)
                    if request.namespace and "namespace" not in meta:
                        meta["namespace"] = request.namespace
                    meta["resourceVersion"] = rv
                elif request.action == enums.action.UPDATE and request.name is not None:
                    key = (request.resource, request.namespace, request.name)
                    cur = (
                        dict(self.objects[key])
                        if key in self.objects and not self.objects[key].deleted
                        else {}
                    )
                    if isinstance(request.data, list):  # application/json-patch+json
                        for op in request.data:
                            if (
                                op.get("op") == "test"
                                and op.get("path") == "/metadata/resourceVersion"
                            ):
                                have = (cur.get("metadata") or {}).get("resourceVersion")
                                if have != op.get("value"):
                                    raise kmock.KubernetesError(
                                        status=422,
                                        reason="Invalid",
                                        message=f"resourceVersion test failed: {have!r} "
                                        f"!= {op.get('value')!r}",
                                    )
                        request.data.append(
                            {"op": "add", "path": "/metadata/resourceVersion", "value": rv}
                        )
                    else:  # merge (and strategic-merge, treated as merge)
                        request.data.setdefault("metadata", {})["resourceVersion"] = rv
        response = await super()._handle(request)
        # Real apiservers answer 201 on creation; kubernetes-client >= 3x returns None for a 200.
        if (
            request.action == enums.action.CREATE
            and response.status == 200
            and not response.prepared
        ):
            response.set_status(201)
        self.calls.append(
            Call(
                request.headers.get("User-Agent", ""),
                str(request.method),
                str(request.action),
                request.resource,
                request.subresource,
            )
        )
        del self._requests[: -self.KEEP_REQUESTS]
        return response

    async def _serve_replace(self, request):
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                raise kmock.KubernetesObjectNotFoundError()
            cur = self.objects[key].raw
            sent_rv = (request.data.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != cur["metadata"].get("resourceVersion"):
                raise kmock.KubernetesError(
                    status=409,
                    reason="Conflict",
                    message="the object has been modified; "
                    "please apply your changes to the latest version",
                )
            new = copy.deepcopy(request.data)
            meta = new.setdefault("metadata", {})
            for k in ("uid", "creationTimestamp", "namespace", "generation"):
                if k in cur["metadata"]:
                    meta[k] = cur["metadata"][k]
            meta["resourceVersion"] = self._next_rv()
            self.objects[key].history.append(new)
            raw = self.objects[key].raw
            await self._buses[request.resource].put({"type": "MODIFIED", "object": raw})
        return aiohttp.web.json_response(raw)

    def _selected(self, request, key, raw) -> bool:
        resource, namespace, name = key
        return (
            resource == request.resource
            and (request.namespace is None or namespace == request.namespace)
            and (request.name is None or name == request.name)
            and _match_labels(raw, request.params.get("labelSelector"))
        )

    async def _serve_list(self, request):
        result = await super()._serve_list(request)
        sel = request.params.get("labelSelector")
        return {
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": str(self._last_rv)},
            "items": [i for i in result["items"] if _match_labels(i, sel)],
        }

    async def _serve_watch(self, request):
        yield b""  # send the headers now
        bus = self._buses[request.resource]
        async with self._lock:  # mark the bus and snapshot atomically: no lost events
            marker = await bus.mark()
            snapshot = [
                obj.raw
                for key, obj in self.objects.items()
                if not obj.deleted and self._selected(request, key, obj.raw)
            ]
        try:
            since = request.params.get("resourceVersion") or ""
            since_rv = int(since) if since.isdigit() else 0
            for raw in snapshot:
                if since_rv == 0 or _rv(raw) > since_rv:
                    yield {"type": "ADDED", "object": raw}
            async for event in bus.stream(since=marker):
                raw = event.get("object") or {}
                meta = raw.get("metadata") or {}
                key = (request.resource, meta.get("namespace"), meta.get("name"))
                if self._selected(request, key, raw):
                    yield event
        finally:
            await bus.unmark(marker)
