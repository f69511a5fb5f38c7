"""The only module that talks to the Kubernetes API.

Built on httpx rather than the generated `kubernetes` client: the operator is asyncio from
top to bottom, server-side apply is one PATCH with a content type, and a thin client keeps
the request count (which the tests measure) exactly what the code says. Credentials come
from the `kubernetes` package's kubeconfig / in-cluster loaders, so every auth form they
support works here too.
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from modeldeploy import metrics

FIELD_MANAGER = "modeldeploy"
Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the REST API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [prefix]
        if self.namespaced and namespace is not None:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name is not None:
            parts.append(name)
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)


DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
REPLICA_SET = Kind("apps/v1", "ReplicaSet", "replicasets")
SERVICE = Kind("v1", "Service", "services")
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
POD = Kind("v1", "Pod", "pods")
EVENT = Kind("v1", "Event", "events")
SECRET = Kind("v1", "Secret", "secrets")
MODEL_DEPLOYMENT = Kind("modeldeploy.io/v1alpha1", "ModelDeployment", "modeldeployments")
MODEL_RUNTIME = Kind("modeldeploy.io/v1alpha1", "ModelRuntime", "modelruntimes")
CLUSTER_MODEL_RUNTIME = Kind("modeldeploy.io/v1alpha1", "ClusterModelRuntime", "clustermodelruntimes", namespaced=False)
LEASE = Kind("coordination.k8s.io/v1", "Lease", "leases")
NETWORK_POLICY = Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
INGRESS = Kind("networking.k8s.io/v1", "Ingress", "ingresses")
HTTP_ROUTE = Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")
SCALED_OBJECT = Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects")
KINDS_BY_NAME = {
    k.kind: k
    for k in (
        DEPLOYMENT,
        SERVICE,
        HPA,
        POD,
        EVENT,
        SECRET,
        MODEL_DEPLOYMENT,
        MODEL_RUNTIME,
        CLUSTER_MODEL_RUNTIME,
        LEASE,
        NETWORK_POLICY,
        PDB,
        INGRESS,
        HTTP_ROUTE,
        SCALED_OBJECT,
    )
}


class ApiError(Exception):
    """A non-2xx answer; `reason` and `message` are the apiserver's Status fields."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _api_error(response: httpx.Response, text: str) -> ApiError:
    """The apiserver's Status (reason, message) when the body is one; else the raw text."""
    try:
        status = json.loads(text)
        return ApiError(response.status_code, str(status.get("reason", "")), str(status.get("message", text)))
    except (ValueError, AttributeError):
        return ApiError(response.status_code, response.reason_phrase, text[:500])


class _KubeAuth(httpx.Auth):
    """Bearer tokens that can rotate (projected ServiceAccount tokens): refreshed each minute."""

    def __init__(self, configuration: k8s_client.Configuration) -> None:
        self._configuration = configuration
        self._refreshed = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        hook = getattr(self._configuration, "refresh_api_key_hook", None)
        if hook is not None and time.monotonic() - self._refreshed > 60:
            hook(self._configuration)
            self._refreshed = time.monotonic()
        token = self._configuration.api_key.get("authorization") or self._configuration.api_key.get("BearerToken")
        if token:
            prefix = self._configuration.api_key_prefix.get("authorization", "")
            value = token if token.lower().startswith("bearer ") else f"{prefix or 'Bearer'} {token}"
            request.headers["Authorization"] = value
        yield request


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> k8s_client.Configuration:
    """In-cluster when no kubeconfig is given and we run in a pod; else the kubeconfig."""
    configuration = k8s_client.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return configuration
        except k8s_config.ConfigException:
            pass
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, context=context, client_configuration=configuration
    )
    return configuration


def _ssl_context(configuration: k8s_client.Configuration) -> ssl.SSLContext | bool:
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file and configuration.key_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


class KubeApi(Protocol):
    """The API operations the controller uses: the seam between it and the apiserver.

    `KubeClient` is the real one; the tests' in-memory fake (`tests/fakekube.py`) is checked
    against it by one contract suite run against both, so decisions can be unit-tested with the
    apiserver's semantics (apply by field manager, conflicts, status subresource, preconditions).
    """

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj | None: ...

    async def list(
        self, kind: Kind, namespace: str | None, label_selector: str | None = None, *, page_size: int = 500
    ) -> Obj: ...

    def watch(
        self,
        kind: Kind,
        namespace: str | None,
        resource_version: str,
        *,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[Obj]: ...

    async def create(self, kind: Kind, namespace: str, obj: Mapping[str, Any]) -> Obj: ...

    async def replace(self, kind: Kind, namespace: str, name: str, obj: Mapping[str, Any]) -> Obj: ...

    async def apply(self, obj: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER, force: bool = True) -> Obj: ...

    async def patch_status(self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any]) -> Obj: ...

    async def delete(self, kind: Kind, namespace: str, name: str, *, uid: str | None = None) -> bool: ...

    async def post_event(
        self, involved: Mapping[str, Any], *, type_: str, reason: str, message: str, component: str = "modeldeploy"
    ) -> str: ...

    async def bump_event(self, namespace: str, name: str, count: int) -> None: ...

    async def aclose(self) -> None: ...


class KubeClient:
    """Async access to the few API operations the operator needs."""

    def __init__(
        self, configuration: k8s_client.Configuration, *, timeout: float = 30.0, max_requests: int = 20
    ) -> None:
        """`max_requests`: requests in flight at once; watches do not count against it.

        A watch holds its connection for minutes. Sharing one pool of 20 with requests, four
        watched namespaces (five watches each) took every connection: requests and the other
        watches waited for the pool until they timed out, and nothing was reconciled again.
        """
        self.configuration = configuration
        verify, auth = _ssl_context(configuration), _KubeAuth(configuration)

        def client(connections: int | None) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                base_url=configuration.host,
                verify=verify,
                auth=auth,
                timeout=timeout,
                limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
                headers={"User-Agent": "modeldeploy-operator"},
            )

        self._http = client(max_requests)
        self._streams = client(None)  # one connection per watch, as many as there are watches

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._streams.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        verb, resource = request_kind(method, path, (kwargs.get("headers") or {}).get("Content-Type", ""))
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError:
            metrics.API_REQUESTS.labels(verb=verb, resource=resource, code="error").inc()
            raise
        metrics.API_REQUESTS.labels(verb=verb, resource=resource, code=str(response.status_code)).inc()
        if response.status_code >= 400:
            raise _api_error(response, response.text)
        return response

    async def server_version(self) -> Obj:
        """The apiserver's /version document (readable by every client, no RBAC needed)."""
        response = await self._request("GET", "/version")
        return response.json()  # type: ignore[no-any-return]

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj | None:
        try:
            response = await self._request("GET", kind.path(namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        result: Obj = response.json()
        return result

    async def list(
        self, kind: Kind, namespace: str | None, label_selector: str | None = None, *, page_size: int = 500
    ) -> Obj:
        """The whole list, read in pages, with the resourceVersion to start a watch from.

        Pages keep one response of thousands of pods from being decoded in one piece; the
        apiserver serves every page from the snapshot of the first, so the result is consistent.
        """
        params: dict[str, str] = {"limit": str(page_size)}
        if label_selector:
            params["labelSelector"] = label_selector
        items: list[Obj] = []
        while True:
            response = await self._request("GET", kind.path(namespace), params=params)
            page: Obj = response.json()
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                page["items"] = items
                return page
            params["continue"] = token

    async def watch(
        self,
        kind: Kind,
        namespace: str | None,
        resource_version: str,
        *,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[Obj]:
        """Watch events after `resource_version`, bookmarks included, until the server ends the call.

        The server closes the stream after `timeout_seconds`; the client waits a little longer
        for a line, so a silently dead connection (no FIN after a network cut) ends too.
        """
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        timeout = httpx.Timeout(10.0, read=timeout_seconds + 30.0)
        metrics.API_REQUESTS.labels(verb="WATCH", resource=kind.plural, code="").inc()
        async with self._streams.stream("GET", kind.path(namespace), params=params, timeout=timeout) as response:
            if response.status_code >= 400:
                body = (await response.aread()).decode(errors="replace")
                raise _api_error(response, body)
            async for line in json_lines(response.aiter_bytes()):
                yield line

    async def create(self, kind: Kind, namespace: str, obj: Mapping[str, Any]) -> Obj:
        response = await self._request(
            "POST", kind.path(namespace), content=json.dumps(obj), headers={"Content-Type": "application/json"}
        )
        result: Obj = response.json()
        return result

    async def replace(self, kind: Kind, namespace: str, name: str, obj: Mapping[str, Any]) -> Obj:
        """PUT with the resourceVersion the caller read: 409 when someone wrote in between."""
        response = await self._request(
            "PUT", kind.path(namespace, name), content=json.dumps(obj), headers={"Content-Type": "application/json"}
        )
        result: Obj = response.json()
        return result

    async def apply(self, obj: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER, force: bool = True) -> Obj:
        """Server-side apply: the object we send is the whole of what we own.

        The body is JSON (valid YAML) written as UTF-8: with `ensure_ascii` a character
        outside the Basic Multilingual Plane becomes a surrogate pair escape, which JSON allows
        but the apiserver's YAML parser rejects, so one emoji in a model name failed every apply.
        """
        kind = KINDS_BY_NAME[str(obj["kind"])]
        metadata = obj["metadata"]
        path = kind.path(metadata.get("namespace"), metadata["name"])
        params = {"fieldManager": field_manager, "force": "true" if force else "false"}
        response = await self._request(
            "PATCH",
            path,
            params=params,
            content=json.dumps(obj, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        result: Obj = response.json()
        return result

    async def patch_status(self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any]) -> Obj:
        """Replace the whole status through the status subresource; never touches spec or metadata.

        The status is entirely ours, so one JSON-patch `add` of /status swaps it atomically and
        drops fields we no longer report, which a merge patch would have to null one by one.
        """
        response = await self._request(
            "PATCH",
            kind.path(namespace, name, "status"),
            params={"fieldManager": FIELD_MANAGER},
            content=json.dumps([{"op": "add", "path": "/status", "value": status}]),
            headers={"Content-Type": "application/json-patch+json"},
        )
        result: Obj = response.json()
        return result

    async def delete(self, kind: Kind, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete one object, only if it is still the one we looked at (uid precondition)."""
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            await self._request(
                "DELETE",
                kind.path(namespace, name),
                content=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        except ApiError as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    async def post_event(
        self, involved: Mapping[str, Any], *, type_: str, reason: str, message: str, component: str = "modeldeploy"
    ) -> str:
        """A core/v1 Event about `involved`, shown by `kubectl describe`; returns its name."""
        metadata = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = metadata["namespace"]
        name = f"{metadata['name'][:200]}.{uuid.uuid4().hex[:12]}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": metadata["name"],
                "namespace": namespace,
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._request(
            "POST", EVENT.path(namespace), content=json.dumps(event), headers={"Content-Type": "application/json"}
        )
        return name

    async def bump_event(self, namespace: str, name: str, count: int) -> None:
        """Count one more occurrence on an Event already posted (404 when it has expired)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await self._request(
            "PATCH",
            EVENT.path(namespace, name),
            content=json.dumps({"count": count, "lastTimestamp": now}),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    async def stream_lines(self, path: str, params: Mapping[str, str]) -> AsyncIterator[Obj]:
        """A watch stream, one decoded event per line (used by the replica farm)."""
        async with self._streams.stream("GET", path, params=dict(params), timeout=None) as response:
            if response.status_code >= 400:
                raise ApiError(response.status_code, response.reason_phrase, (await response.aread()).decode()[:500])
            async for line in json_lines(response.aiter_bytes()):
                yield line


def request_kind(method: str, path: str, content_type: str = "") -> tuple[str, str]:
    """(verb, resource[/subresource]) of a request, as the apiserver's own metrics name them.

    `/apis/apps/v1/namespaces/ns/deployments/x` is a GET of `deployments`, without the name a
    LIST; a PATCH with an apply-patch body is an APPLY.
    """
    parts = path.strip("/").split("/")
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    resource = rest[0] if rest else ""
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    verb = method.upper()
    if verb == "GET" and len(rest) == 1:
        verb = "LIST"
    elif verb == "PATCH" and content_type.startswith("application/apply-patch"):
        verb = "APPLY"
    return verb, resource


async def json_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[Obj]:
    """Decode a watch stream: one JSON document per newline-terminated line.

    Split on b"\\n" only. httpx's `aiter_lines` also splits on the Unicode line boundaries
    (U+001C-U+001E, U+0085, U+2028, U+2029) that the apiserver writes unescaped inside strings:
    one ModelDeployment whose model name held such a character cut every watch event in two,
    and the informer reconnected, and failed, forever.
    """
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if buffer.strip():
        yield json.loads(buffer)
