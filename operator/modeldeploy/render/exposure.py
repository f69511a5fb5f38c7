"""The route from outside the cluster to a model: a Gateway API HTTPRoute or an Ingress (pure).

Either one sends to the model's Service on its client port (the authorizing proxy's when
callers are authorized), and says the URL the status publishes.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec, ServerSpec
from modeldeploy.render import labels as lbl
from modeldeploy.render.children import Owner, child_metadata, prune, service_port, with_hash
from modeldeploy.render.names import child_name

Obj = dict[str, Any]
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"


def render_http_route(owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec) -> Obj | None:
    exposure = spec.exposure
    if exposure is None or exposure.http_route is None:
        return None
    route, name = exposure.http_route, child_name(owner.name)
    parents = [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": ref.name,
            "namespace": ref.namespace,
            "sectionName": ref.section_name,
        }
        for ref in route.parent_refs
    ]
    obj = {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": child_metadata(owner, name, lbl.common_labels(name, spec.model.name, spec.model.version)),
        "spec": {
            "parentRefs": parents,
            "hostnames": list(route.hostnames or []),
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": route.path}}],
                    "backendRefs": [
                        {"group": "", "kind": "Service", "name": name, "port": service_port(spec, server), "weight": 1}
                    ],
                }
            ],
        },
    }
    return with_hash(prune(obj))


def render_ingress(owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec) -> Obj | None:
    exposure = spec.exposure
    if exposure is None or exposure.ingress is None:
        return None
    ingress, name = exposure.ingress, child_name(owner.name)
    rule: Obj = {
        "host": ingress.host,
        "http": {
            "paths": [
                {
                    "path": ingress.path,
                    "pathType": "Prefix",
                    "backend": {"service": {"name": name, "port": {"number": service_port(spec, server)}}},
                }
            ]
        },
    }
    tls = None
    if ingress.tls_secret_name is not None:
        tls = [{"hosts": [ingress.host] if ingress.host else None, "secretName": ingress.tls_secret_name}]
    obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": child_metadata(owner, name, lbl.common_labels(name, spec.model.name, spec.model.version)),
        "spec": {"ingressClassName": ingress.class_name, "rules": [rule], "tls": tls},
    }
    return with_hash(prune(obj))


def exposure_url(spec: ModelDeploymentSpec) -> str | None:
    """The external URL: a host name is needed (a route without one is reachable, but at no name we know)."""
    exposure = spec.exposure
    if exposure is None:
        return None
    if exposure.http_route is not None:
        hosts = exposure.http_route.hostnames or []
        if not hosts or hosts[0].startswith("*"):
            return None
        return f"http://{hosts[0]}{_path(exposure.http_route.path)}"
    if exposure.ingress is not None and exposure.ingress.host and not exposure.ingress.host.startswith("*"):
        scheme = "https" if exposure.ingress.tls_secret_name is not None else "http"
        return f"{scheme}://{exposure.ingress.host}{_path(exposure.ingress.path)}"
    return None


def _path(path: str) -> str:
    return "" if path == "/" else path
