"""The route from outside (HTTPRoute, Ingress), the URL it publishes, and KEDA's ScaledObject (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec
from modeldeploy.render.children import Owner, render_hpa
from modeldeploy.render.exposure import exposure_url, render_http_route, render_ingress
from modeldeploy.render.keda import default_request_query, render_scaled_object
from modeldeploy.render.runtime import explicit_server

Obj = dict[str, Any]
OWNER = Owner("iris", "models", "6f1c2a4e-0000-4000-8000-000000000001")
PROMETHEUS = "http://prometheus.monitoring:9090"


def _spec(**sections: Any) -> ModelDeploymentSpec:
    base: Obj = {"model": {"name": "iris", "version": "1.0.0"}, "runtime": {"image": "example/iris:1", "port": 9000}}
    return ModelDeploymentSpec.model_validate({**base, **sections})


GW = [{"name": "gw"}]
URLS: list[tuple[str, Obj | None, str | None]] = [
    ("not exposed", None, None),
    ("a route's first host", {"httpRoute": {"parentRefs": GW, "hostnames": ["iris.example.com", "b.io"]}}, "http://iris.example.com"),
    ("a route's path", {"httpRoute": {"parentRefs": GW, "hostnames": ["ml.io"], "path": "/iris"}}, "http://ml.io/iris"),
    ("a route without a host: no name we know", {"httpRoute": {"parentRefs": GW}}, None),
    ("a wildcard host is no URL", {"httpRoute": {"parentRefs": GW, "hostnames": ["*.example.com"]}}, None),
    ("an ingress with TLS", {"ingress": {"host": "iris.example.com", "path": "/v2", "tlsSecretName": "tls"}}, "https://iris.example.com/v2"),
    ("an ingress without", {"ingress": {"host": "iris.example.com"}}, "http://iris.example.com"),
    ("an ingress without a host", {"ingress": {}}, None),
]  # fmt: skip


@pytest.mark.parametrize(("exposure", "url"), [u[1:] for u in URLS], ids=[u[0] for u in URLS])
def test_status_url(exposure: Obj | None, url: str | None) -> None:
    spec = _spec(exposure=exposure) if exposure is not None else _spec()
    assert exposure_url(spec) == url


def test_http_route_sends_the_prefix_to_the_service_port() -> None:
    spec = _spec(
        exposure={
            "httpRoute": {
                "parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "https"}],
                "hostnames": ["iris.example.com"],
                "path": "/iris",
            }
        }
    )
    route = render_http_route(OWNER, spec, explicit_server(spec))
    assert route is not None
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "gw",
            "namespace": "infra",
            "sectionName": "https",
        }
    ]
    assert route["spec"]["hostnames"] == ["iris.example.com"]
    assert route["spec"]["rules"] == [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/iris"}}],
            "backendRefs": [{"group": "", "kind": "Service", "name": "iris", "port": 9000, "weight": 1}],
        }
    ]
    assert render_ingress(OWNER, spec, explicit_server(spec)) is None


def test_ingress_with_class_and_tls() -> None:
    spec = _spec(exposure={"ingress": {"className": "nginx", "host": "iris.example.com", "tlsSecretName": "iris-tls"}})
    ingress = render_ingress(OWNER, spec, explicit_server(spec))
    assert ingress is not None
    assert ingress["spec"] == {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "iris.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "iris", "port": {"number": 9000}}},
                        }
                    ]
                },
            }
        ],
        "tls": [{"hosts": ["iris.example.com"], "secretName": "iris-tls"}],
    }
    assert render_http_route(OWNER, spec, explicit_server(spec)) is None


def test_keda_replaces_the_hpa_and_never_sits_beside_it() -> None:
    hpa = _spec(autoscaling={"maxReplicas": 4, "targetCPUUtilizationPercentage": 70})
    keda = _spec(autoscaling={"engine": "keda", "maxReplicas": 4, "targetCPUUtilizationPercentage": 70})
    assert render_hpa(OWNER, hpa) is not None
    assert render_scaled_object(OWNER, hpa) is None
    assert render_hpa(OWNER, keda) is None
    assert render_scaled_object(OWNER, keda) is not None
    assert render_scaled_object(OWNER, _spec()) is None


def test_scaled_object_to_zero_on_requests() -> None:
    spec = _spec(
        autoscaling={
            "engine": "keda",
            "minReplicas": 0,
            "maxReplicas": 5,
            "targetCPUUtilizationPercentage": 80,
            "cooldownSeconds": 120,
            "requestRate": {
                "prometheusAddress": PROMETHEUS,
                "targetPerReplica": 12.5,
                "activation": 1,
                "query": 'sum(rate(envoy_cluster_upstream_rq_total{envoy_cluster_name="models/iris"}[1m]))',
            },
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
        }
    )
    scaled = render_scaled_object(OWNER, spec)
    assert scaled is not None
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert scaled["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris"},
        "minReplicaCount": 0,
        "maxReplicaCount": 5,
        "cooldownPeriod": 120,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}},
        "triggers": [
            {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}},
            {
                "type": "prometheus",
                "name": "requests",
                "metadata": {
                    "serverAddress": PROMETHEUS,
                    "query": 'sum(rate(envoy_cluster_upstream_rq_total{envoy_cluster_name="models/iris"}[1m]))',
                    "threshold": "12.5",
                    "activationThreshold": "1",
                },
            },
        ],
    }


def test_default_query_counts_the_stable_pods_inference_requests_of_any_known_runtime() -> None:
    query = default_request_query("models", "iris")
    assert query.count(" or ") == 2
    assert (
        'sum(rate(modelserver_request_duration_seconds_count{namespace="models",pod=~"iris-[a-z0-9]+-[a-z0-9]+"}[2m]))'
        in query
    )
    # MLServer's histogram counts the probes too: only the inference path
    assert (
        'rest_server_request_duration_seconds_count{namespace="models",pod=~"iris-[a-z0-9]+-[a-z0-9]+",path=~".*/infer"}'
        in query
    )


def test_a_long_name_gets_an_hpa_name_keda_can_create() -> None:
    """KEDA's webhook refuses a ScaledObject whose keda-hpa-<name> would pass 63 characters."""
    spec = _spec(autoscaling={"engine": "keda", "maxReplicas": 2, "targetCPUUtilizationPercentage": 70})
    long = Owner("m" * 60, "models", OWNER.uid)
    named = render_scaled_object(long, spec)
    assert named is not None
    hpa_name = named["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"]
    assert len(hpa_name) <= 63
    assert hpa_name.startswith("m" * 40)
    short = render_scaled_object(OWNER, spec)
    assert short is not None
    assert "advanced" not in short["spec"]  # keda-hpa-iris, KEDA's own choice
