"""The authorizing proxy in front of a model (access.authorization: kubernetes), as pod parts (pure).

kube-rbac-proxy admits a request when the caller's bearer token passes a TokenReview and a
SubjectAccessReview on this ModelDeployment's `predict` subresource, with the verb of the HTTP
method (POST: create, GET: get): who may call a model is plain RBAC. It listens with TLS on its
own port and forwards to the model on the pod's loopback; the operator and the kubelet still
reach the model's own port directly (the NetworkPolicy admits nobody else there).

Its configuration travels as a pod annotation projected into a file by the downward API, so
nothing beyond the Deployment is created and no ConfigMap RBAC is needed. Its credentials are a
projected ServiceAccount token mounted into its container only: the model server keeps running
without API credentials.
"""

from __future__ import annotations

import json
from typing import Any

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec, ServerSpec
from modeldeploy.render.model import RESTRICTED, Platform

Obj = dict[str, Any]
PROXY_CONTAINER = "authz"
PROXY_PORT = "authz"  # the container port's name, which the Service and the NetworkPolicy refer to
CONFIG_ANNOTATION = "modeldeploy.io/authz-config"
CONFIG_DIR = "/etc/modeldeploy/authz"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
CONFIG_VOLUME = "modeldeploy-authz-config"
TOKEN_VOLUME = "modeldeploy-authz-token"
RESERVED_VOLUMES = frozenset({CONFIG_VOLUME, TOKEN_VOLUME})
PROXY_RESOURCES: Obj = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}


def authorized(spec: ModelDeploymentSpec) -> bool:
    return spec.access is not None and spec.access.authorization == "kubernetes"


def proxy_port_number(server: ServerSpec) -> int:
    """8443, unless the model (or its metrics) already listens there."""
    taken = {server.port, server.metrics.port or server.port}
    return next(port for port in (8443, 9443, 10443) if port not in taken)


def proxy_config(namespace: str, name: str) -> str:
    """What the proxy asks the apiserver about each caller: a verb on modeldeployments/predict of this one."""
    attributes = {
        "namespace": namespace,
        "apiGroup": "modeldeploy.io",
        "apiVersion": "v1alpha1",
        "resource": "modeldeployments",
        "subresource": "predict",
        "name": name,
    }
    return json.dumps({"authorization": {"resourceAttributes": attributes}}, sort_keys=True)


def proxy_container(server: ServerSpec, platform: Platform) -> Obj:
    port = proxy_port_number(server)
    return {
        "name": PROXY_CONTAINER,
        "image": platform.auth_proxy_image,
        "args": [
            f"--secure-listen-address=0.0.0.0:{port}",
            f"--upstream=http://127.0.0.1:{server.port}/",
            f"--config-file={CONFIG_DIR}/config.json",
            "--auth-header-fields-enabled",  # the model may log who asked (x-remote-user)
        ],
        "ports": [{"name": PROXY_PORT, "containerPort": port, "protocol": "TCP"}],
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
        ],
        "resources": PROXY_RESOURCES,
        "securityContext": RESTRICTED,
    }


def proxy_volumes() -> list[Obj]:
    return [
        {
            "name": CONFIG_VOLUME,
            "downwardAPI": {
                "items": [
                    {"path": "config.json", "fieldRef": {"fieldPath": f"metadata.annotations['{CONFIG_ANNOTATION}']"}}
                ]
            },
        },
        {
            "name": TOKEN_VOLUME,
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {
                        "downwardAPI": {
                            "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                        }
                    },
                ]
            },
        },
    ]


def proxy_serving(deployment: Obj | None) -> bool:
    """Whether every pod of a Deployment has the proxy: its template names the proxy's port, and its
    rollout is complete. Only then may the Service and the NetworkPolicy lead callers to that port;
    before (a rollout under way, a canary holding the stable, a rollback reverting it) pods without
    it would be cut off.
    """
    if deployment is None:
        return False
    template = (deployment.get("spec") or {}).get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    if not any(port.get("name") == PROXY_PORT for c in containers for port in c.get("ports") or []):
        return False
    status, wanted = deployment.get("status") or {}, (deployment.get("spec") or {}).get("replicas", 1)
    current = int(status.get("observedGeneration", 0)) >= int(deployment["metadata"].get("generation", 0))
    updated, replicas = int(status.get("updatedReplicas", 0)), int(status.get("replicas", 0))
    return current and updated >= int(wanted) and replicas == updated
