"""How the operator names its own API requests in `modeldeploy_api_requests_total`."""

from __future__ import annotations

from collections.abc import AsyncIterator

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


async def test_watch_lines_split_only_at_newlines_whatever_the_strings_hold() -> None:
    """A model name with U+2028, U+0085 or U+001E cut every watch event in two (httpx's aiter_lines)."""
    import json

    from modeldeploy.kubeapi import json_lines

    names = ["a\u2028b", "c\x85d", "e\x1ef", "plain", "\u6a21\u578b"]
    stream = b"".join(
        json.dumps({"type": "ADDED", "object": {"metadata": {"name": n}}}, ensure_ascii=False).encode() + b"\n"
        for n in names
    )

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(stream), 7):  # events arrive split anywhere, even inside a character
            yield stream[start : start + 7]

    decoded = [event["object"]["metadata"]["name"] async for event in json_lines(chunks())]
    assert decoded == names
