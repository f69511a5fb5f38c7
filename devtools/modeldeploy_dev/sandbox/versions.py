"""Pinned versions of every binary the sandbox builds.

One place, so the cache key, the build and the tests that check `/version` agree.
"""

from __future__ import annotations

KUBERNETES = "v1.37.2"
ETCD = "v3.6.16"
KWOK = "v0.8.0"
HELM = "v3.22.0"
CLI_UTILS = "v0.37.2"
GOPHER_LUA = "v1.1.2"  # the Lua interpreter Argo CD embeds (tests/argocd-lua)
GATEWAY_API = "v1.6.3"  # sigs.k8s.io/gateway-api: its standard CRDs, for canary weights on an HTTPRoute
KUBE_RBAC_PROXY = "v0.19.1"  # github.com/brancz/kube-rbac-proxy: the authorizing proxy of access.authorization
KEDA = "v2.21.0"  # github.com/kedacore/keda/v2: its CRDs, for autoscaling.engine keda
PROMETHEUS = "v0.316.0"  # Go module version of Prometheus 3.x, for promtool (metric name checks)

KUBERNETES_MINOR = ".".join(KUBERNETES.lstrip("v").split(".")[:2])
