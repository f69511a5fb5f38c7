"""Where a model artifact lives, from `spec.model.uri` (pure).

Four ways to get it into a pod:
- fetched by the storage initializer (`modeldeploy fetch`, an init container) from an object
  store or a web server: s3, gs, azure/az, http/https;
- mounted from a PersistentVolumeClaim, no copy: `pvc://claim/path/in/volume`;
- from an OCI image (a "modelcar": the model under /models in the image): `oci://registry/repo:tag`,
  mounted as an image volume where the cluster has them, else copied out by an init container;
- already in the image: an absolute path (`/models/iris`), or no URI at all.
Anything else is refused with the list of what is understood: a typo such as `s4://` must not
become a pod that starts without its model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

FETCHED_SCHEMES = ("s3", "gs", "azure", "az", "http", "https")
# The API's schema refuses what no fetcher reads (`api.rules.MODEL_URI_PATTERN`); `parse`
# checks the rest. Not imported from there: the fetcher starts in every model pod, and the API
# models cost a third of a second to import.
_CLAIM = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

FETCH_CONTAINER = "fetch-model"  # the init container that runs `modeldeploy fetch`
MODEL_VOLUME = "model"
MODEL_MOUNT = "/mnt/models"
MODEL_DIR = f"{MODEL_MOUNT}/model"  # the fetcher renames its finished download to this, whole
OCI_MODEL_PATH = "/models"  # where a modelcar image holds its model (KServe's convention)
OCI_MODEL_DIR = f"{MODEL_MOUNT}{OCI_MODEL_PATH}"
COPY_CONTAINER = "copy-model"  # the init container that copies a modelcar's model without image volumes
_IMAGE_REFERENCE = re.compile(
    r"^([A-Za-z0-9][-A-Za-z0-9.]*(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][-A-Za-z0-9_.]{0,127})?(@sha256:[0-9a-f]{64})?$"
)


class InvalidLocation(ValueError):
    """A model URI that names no artifact: the message says what is missing, in the URI's terms."""


@dataclass(frozen=True)
class Location:
    kind: Literal["fetch", "pvc", "oci", "image"]
    uri: str
    claim: str | None = None  # pvc: the claim's name
    sub_path: str = ""  # pvc: the path inside the volume ("" for its root)
    reference: str | None = None  # oci: the image reference


def parse(uri: str) -> Location:
    """The artifact's location, or InvalidLocation saying what is wrong with the URI."""
    if uri.startswith("/"):
        return Location("image", uri)
    try:
        parts = urlsplit(uri)
    except ValueError as error:  # e.g. an unclosed "[" read as an IPv6 host
        raise InvalidLocation(f"{uri}: {error}") from None
    scheme = parts.scheme.lower()
    if scheme == "pvc":
        claim, _, sub_path = f"{parts.netloc}{parts.path}".partition("/")
        if not _CLAIM.match(claim) or len(claim) > 253:
            raise InvalidLocation(f"{uri}: {claim!r} is not a PersistentVolumeClaim name (pvc://claim/path)")
        if any(segment == ".." for segment in sub_path.split("/")):
            raise InvalidLocation(f"{uri}: the path inside the volume may not contain '..'")
        return Location("pvc", uri, claim=claim, sub_path=sub_path.strip("/"))
    if scheme == "oci":
        reference = uri[len("oci://") :]
        if not _IMAGE_REFERENCE.match(reference) or len(reference) > 1024:
            raise InvalidLocation(f"{uri}: {reference!r} is not an image reference (oci://registry/repository:tag)")
        return Location("oci", uri, reference=reference)
    if scheme not in FETCHED_SCHEMES:
        known = ", ".join(f"{s}://" for s in (*FETCHED_SCHEMES, "pvc", "oci"))
        raise InvalidLocation(
            f"{uri}: unknown scheme {scheme or '(none)'!r}; one of {known}, or an absolute path in the image"
        )
    if not parts.netloc:
        what = "host" if scheme in ("http", "https") else "bucket or container"
        raise InvalidLocation(f"{uri}: no {what} after {scheme}://")
    if scheme in ("http", "https") and (parts.path.strip("/") == "" or parts.path.endswith("/")):
        raise InvalidLocation(f"{uri}: an http(s) URI must name a file (web servers cannot be listed)")
    return Location("fetch", uri)
