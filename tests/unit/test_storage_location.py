"""Where a model artifact lives, from spec.model.uri: fetched, mounted, or already in the image."""

from __future__ import annotations

import re

import pytest

from modeldeploy.api.rules import MODEL_URI_PATTERN as URI_PATTERN
from modeldeploy.storage.location import InvalidLocation, Location, parse


@pytest.mark.parametrize(
    ("uri", "location"),
    [
        ("s3://models/iris/2.0.0", Location("fetch", "s3://models/iris/2.0.0")),
        ("s3://models/iris/2.0.0/model.joblib", Location("fetch", "s3://models/iris/2.0.0/model.joblib")),
        ("gs://bucket/iris", Location("fetch", "gs://bucket/iris")),
        ("az://account/container/iris", Location("fetch", "az://account/container/iris")),
        ("azure://account/container/iris", Location("fetch", "azure://account/container/iris")),
        ("https://example.org/iris.onnx", Location("fetch", "https://example.org/iris.onnx")),
        (
            "pvc://models-claim/iris/2.0.0",
            Location("pvc", "pvc://models-claim/iris/2.0.0", "models-claim", "iris/2.0.0"),
        ),
        ("pvc://models-claim", Location("pvc", "pvc://models-claim", "models-claim", "")),
        ("/models/iris", Location("image", "/models/iris")),
        (
            "oci://registry.example:5000/team/iris-modelcar:2.0.0",
            Location(
                "oci",
                "oci://registry.example:5000/team/iris-modelcar:2.0.0",
                reference="registry.example:5000/team/iris-modelcar:2.0.0",
            ),
        ),
        (
            "oci://ghcr.io/org/iris@sha256:" + "a" * 64,
            Location(
                "oci", "oci://ghcr.io/org/iris@sha256:" + "a" * 64, reference="ghcr.io/org/iris@sha256:" + "a" * 64
            ),
        ),
    ],
)
def test_where_a_uri_points(uri: str, location: Location) -> None:
    assert parse(uri) == location
    assert re.match(URI_PATTERN, uri), "the API's schema accepts what parse accepts"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s4://models/iris", "s4://models/iris: unknown scheme 's4'; one of s3://, gs://, azure://, az://"),
        ("models/iris", "models/iris: unknown scheme '(none)'"),
        ("s3:///iris", "s3:///iris: no bucket or container after s3://"),
        ("https://example.org/", "https://example.org/: an http(s) URI must name a file"),
        ("pvc://Models_Claim/x", "pvc://Models_Claim/x: 'Models_Claim' is not a PersistentVolumeClaim name"),
        ("pvc://claim/../etc", "pvc://claim/../etc: the path inside the volume may not contain '..'"),
        ("s3://[bucket/x", "s3://[bucket/x: Invalid IPv6 URL"),
        ("https://example.org/models/", "https://example.org/models/: an http(s) URI must name a file"),
        ("oci://Registry/Team/Iris:1", "oci://Registry/Team/Iris:1: 'Registry/Team/Iris:1' is not an image reference"),
        ("oci://ghcr.io/org/iris:", "oci://ghcr.io/org/iris:: 'ghcr.io/org/iris:' is not an image reference"),
    ],
)
def test_what_is_refused_says_why(uri: str, message: str) -> None:
    with pytest.raises(InvalidLocation) as refused:
        parse(uri)
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("uri", ["s4://models/iris", "models/iris", "s3://", "s3://has space/x", "ftp://host/x"])
def test_the_schema_refuses_what_no_fetcher_reads(uri: str) -> None:
    assert not re.match(URI_PATTERN, uri)
