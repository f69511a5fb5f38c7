"""How the operator names its own API requests in `modeldeploy_api_requests_total`."""

from __future__ import annotations

import pytest

from modeldeploy.kubeapi import request_kind


@pytest.mark.parametrize(
    ("method", "path", "content_type", "expected"),
    [
        ("GET", "/apis/apps/v1/namespaces/ns/deployments/iris", "", ("GET", "deployments")),
        ("GET", "/apis/apps/v1/namespaces/ns/deployments", "", ("LIST", "deployments")),
        ("GET", "/apis/modeldeploy.io/v1alpha1/modeldeployments", "", ("LIST", "modeldeployments")),
        ("PATCH", "/api/v1/namespaces/ns/services/iris", "application/apply-patch+yaml", ("APPLY", "services")),
        (
            "PATCH",
            "/apis/modeldeploy.io/v1alpha1/namespaces/ns/modeldeployments/iris/status",
            "application/json-patch+json",
            ("PATCH", "modeldeployments/status"),
        ),
        ("POST", "/api/v1/namespaces/ns/events", "application/json", ("POST", "events")),
        ("GET", "/api/v1/namespaces/ns", "", ("GET", "namespaces")),
        ("DELETE", "/apis/autoscaling/v2/namespaces/ns/horizontalpodautoscalers/x", "", ("DELETE", "hpa")),
    ],
)
def test_requests_are_named_by_verb_and_resource(
    method: str, path: str, content_type: str, expected: tuple[str, str]
) -> None:
    verb, resource = request_kind(method, path, content_type)
    assert (verb, resource.replace("horizontalpodautoscalers", "hpa")) == expected
