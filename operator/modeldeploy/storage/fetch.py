"""The storage initializer: `modeldeploy fetch URI DEST`, run as an init container of a model pod.

Object stores are read through obstore (the Rust `object_store` crate: S3 and S3-compatible
endpoints, GCS, Azure) rather than a client of our own; an http(s):// URI is one plain GET
(httpx), as a browser or curl would do it, so a presigned URL works as written (obstore would
read a bucket host as an S3 store and HEAD it first, which a presigned GET URL refuses).
Credentials and endpoints come
from the container's environment, which the kubelet fills from the Secret the spec names
(`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_KEY`,
...): the operator never reads a Secret.

The runtime must never see half a model: everything lands in a temporary folder beside the
destination and is renamed into place whole, with a marker naming what was fetched, so a
restarted pod whose volume survived does not fetch again. A failure ends with one line (`URI:
reason`) in the container's termination message, which the operator copies onto the status.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import unquote, urlsplit

import httpx
import obstore
from obstore.store import ObjectStore, from_url

from modeldeploy.storage.location import InvalidLocation, parse

MARKER = ".fetched.json"
CHUNK = 8 << 20
PROGRESS_SECONDS = 5.0
TERMINATION_LOG = "/dev/termination-log"
_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")


class FetchFailed(Exception):
    """Why the artifact could not be fetched, in one line a person can act on."""


@dataclass
class Fetched:
    uri: str
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    sha256: str | None = None  # of the artifact when it is one file
    seconds: float = 0.0
    reused: bool = False  # a previous run of this init container fetched it already


def fetch(
    uri: str,
    dest: Path,
    *,
    sha256: str | None = None,
    progress: Callable[[str], None] | None = None,
    store: ObjectStore | None = None,
) -> Fetched:
    """Fetch `uri` (an object, or every object under a prefix) into `dest/model`, whole or not at all."""
    started = time.monotonic()
    final = dest / "model"
    reused = _already_fetched(final, uri, sha256)
    if reused is not None:
        return reused
    try:
        location = parse(uri)
    except InvalidLocation as error:
        raise FetchFailed(str(error)) from None
    if location.kind != "fetch":
        raise FetchFailed(f"{uri}: nothing to fetch ({location.kind}: the pod mounts or holds it)")
    download: Callable[[str, Path, _Meter], str]
    if store is None and uri.startswith(("http://", "https://")):
        name = PurePosixPath(unquote(urlsplit(uri).path)).name or "model"  # a URL may end in "/"
        objects = [("", name, 0)]  # the size comes with the answer
        download = lambda _, target, meter: _download_web(uri, target, meter)  # noqa: E731
    else:
        chosen = store if store is not None else _store(uri)
        objects = _objects(chosen, uri)
        download = lambda source, target, meter: _download(chosen, source, target, uri, meter)  # noqa: E731
    if sha256 is not None and len(objects) != 1:
        raise FetchFailed(f"{uri}: sha256 checks a single-file artifact; this URI holds {len(objects)} objects")
    dest.mkdir(parents=True, exist_ok=True)
    partial = dest / f".partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    result = Fetched(uri)
    total = sum(size for _, _, size in objects)
    meter = _Meter(total, progress)
    try:
        for source, relative, _ in objects:
            target = partial / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = download(source, target, meter)
            result.files.append(relative)
            result.sha256 = digest if len(objects) == 1 else None
        if sha256 is not None and result.sha256 != sha256.lower():
            raise FetchFailed(f"{uri}: sha256 mismatch: expected {sha256.lower()}, got {result.sha256}")
        result.bytes, result.seconds = meter.done, time.monotonic() - started
        (partial / MARKER).write_text(json.dumps({"uri": uri, "sha256": result.sha256, "files": result.files}))
        _replace(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    meter.finish()
    return result


def _store(uri: str) -> ObjectStore:
    # Plain http only where the user asked for it: an http:// URI, or an http:// S3 endpoint
    # (a MinIO or Ceph gateway inside the cluster).
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT") or ""
    plain = uri.startswith("http://") or (uri.startswith("s3://") and endpoint.startswith("http://"))
    try:
        # the prefix is the URI's path; credentials and endpoint from the environment
        return from_url(uri, client_options={"allow_http": True} if plain else None)
    except Exception as error:  # obstore raises its own types, and ValueError for bad config
        raise FetchFailed(f"{uri}: {_reason(error)}") from None


def _objects(store: ObjectStore, uri: str) -> list[tuple[str, str, int]]:
    """(path in the store, path under the model folder, size) for the object or the prefix's objects."""
    not_found: Exception
    try:
        if uri.endswith("/") and not uri.startswith(("http://", "https://")):
            # a prefix by its spelling: a HEAD could find the 0-byte "folder" object a console made
            raise FileNotFoundError(uri)
        head = obstore.head(store, "")
        name = PurePosixPath(unquote(urlsplit(uri).path).rstrip("/")).name
        return [("", name, int(head["size"]))]
    except FileNotFoundError as missing:
        not_found = missing
    except Exception as error:
        if uri.startswith(("http://", "https://")):
            raise FetchFailed(f"{uri}: {_reason(error)}") from None
        not_found = error  # some stores answer a HEAD on a prefix with an error: try listing it
    if uri.startswith(("http://", "https://")):
        raise FetchFailed(f"{uri}: {_reason(not_found)}")
    try:
        listed = [(str(m["path"]), int(m["size"])) for batch in obstore.list(store) for m in batch]
    except Exception as error:
        raise FetchFailed(f"{uri}: {_reason(error)}") from None
    # A console's "create folder" leaves a 0-byte object whose key ends in "/"; obstore lists it
    # without the "/", as a file named like the folder beside it. Such a path is no file to write.
    folders = {str(parent) for path, _ in listed for parent in PurePosixPath(path).parents}
    for path, size in listed:
        if path in folders and size > 0:
            raise FetchFailed(f"{uri}: object {path!r} is also a folder of other objects; which one is meant?")
    files = [(path, size) for path, size in listed if path and not path.endswith("/") and path not in folders]
    if not files:
        reason = "NoSuchKey" if uri.startswith("s3://") and isinstance(not_found, FileNotFoundError) else None
        raise FetchFailed(f"{uri}: {reason or _reason(not_found)} (no object there, and none under it as a prefix)")
    objects = []
    for path, size in sorted(files):
        relative = PurePosixPath(path)
        if relative.is_absolute() or ".." in relative.parts:
            raise FetchFailed(f"{uri}: object {path!r} would land outside the model folder")
        objects.append((path, str(relative), size))
    return objects


def _download(store: ObjectStore, source: str, target: Path, uri: str, meter: _Meter) -> str:
    digest = hashlib.sha256()
    try:
        response = obstore.get(store, source)
        with open(target, "wb") as out:
            for chunk in response.stream(min_chunk_size=CHUNK):
                view = memoryview(chunk)
                out.write(view)
                digest.update(view)
                meter.add(len(view))
            out.flush()
            os.fsync(out.fileno())  # an emptyDir outlives a node restart: no truncated file behind a marker
    except FetchFailed:
        raise
    except Exception as error:
        where = f"{uri.rstrip('/')}/{source}" if source else uri
        raise FetchFailed(f"{where}: {_reason(error)}") from None
    return digest.hexdigest()


WEB_TIMEOUT = httpx.Timeout(30.0, read=300.0)


def _download_web(uri: str, target: Path, meter: _Meter) -> str:
    """One GET, redirects followed; proxies and CA bundles from the environment (HTTPS_PROXY, SSL_CERT_FILE)."""
    digest = hashlib.sha256()
    try:
        # the bytes as stored: an object kept gzip-encoded must hash as it was checksummed
        headers = {"Accept-Encoding": "identity"}
        with httpx.stream("GET", uri, headers=headers, follow_redirects=True, timeout=WEB_TIMEOUT) as response:
            if response.status_code == 404:
                raise FetchFailed(f"{uri}: not found")
            if response.status_code >= 400:
                raise FetchFailed(f"{uri}: HTTP {response.status_code} {response.reason_phrase}")
            meter.total += int(response.headers.get("content-length") or 0)
            with open(target, "wb") as out:
                for chunk in response.iter_raw(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    meter.add(len(chunk))
                out.flush()
                os.fsync(out.fileno())
    except FetchFailed:
        raise
    except httpx.HTTPError as error:
        raise FetchFailed(f"{uri}: {_reason(error)}") from None
    return digest.hexdigest()


def _replace(partial: Path, final: Path) -> None:
    """Put the finished download in place with renames, so the folder is never half there."""
    old = final.with_name(f".old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)  # a restarted container has the same PID (1) as the last
    if final.exists():
        final.rename(old)
    partial.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _already_fetched(final: Path, uri: str, sha256: str | None) -> Fetched | None:
    try:
        marker = json.loads((final / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict):
        return None
    if marker.get("uri") != uri or (sha256 is not None and marker.get("sha256") != sha256.lower()):
        return None
    return Fetched(uri, files=list(marker.get("files") or []), sha256=marker.get("sha256"), reused=True)


def _reason(error: BaseException) -> str:
    """The store's own words, short: S3's error code when it gives one, else the first line."""
    text = str(error)
    code = _S3_CODE.search(text)
    if code:
        return code.group(1)
    if isinstance(error, FileNotFoundError):
        return "not found"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first[:300]


class _Meter:
    """A progress line every few seconds: how much, of how much, how fast."""

    def __init__(self, total: int, say: Callable[[str], None] | None) -> None:
        self.total, self.done, self._say = total, 0, say
        self._started = self._last = time.monotonic()

    def add(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self._say is not None and now - self._last >= PROGRESS_SECONDS:
            self._last = now
            self._say(self._line(now))

    def finish(self) -> None:
        if self._say is not None:
            self._say(self._line(time.monotonic()))

    def _line(self, now: float) -> str:
        rate = self.done / max(now - self._started, 1e-6) / (1 << 20)
        return f"fetched {self.done / (1 << 20):.1f} of {self.total / (1 << 20):.1f} MiB ({rate:.1f} MiB/s)"


def run(uri: str, dest: Path, sha256: str | None, termination_log: str, out: IO[str] = sys.stderr) -> int:
    """The init container's whole life: fetch, say what happened, and leave a reason when it fails."""
    try:
        result = fetch(uri, dest, sha256=sha256, progress=lambda line: print(line, file=out, flush=True))
    except (FetchFailed, OSError) as failure:
        reason = str(failure) if isinstance(failure, FetchFailed) else f"{uri}: {failure}"
        print(f"modeldeploy fetch: {reason}", file=out, flush=True)
        _write_termination_message(termination_log, reason)
        return 1
    if result.reused:
        print(f"{uri}: already in {dest / 'model'} (fetched by an earlier run)", file=out, flush=True)
    else:
        checked = f", sha256 {result.sha256}" if result.sha256 else ""
        print(f"{uri}: {len(result.files)} file(s), {result.bytes} bytes{checked}", file=out, flush=True)
    # What was fetched, for the operator to show on the status (status.model) without reading logs.
    report = {"uri": uri, "sha256": result.sha256, "files": len(result.files)}
    _write_termination_message(termination_log, json.dumps(report, separators=(",", ":")))
    return 0


def _write_termination_message(path: str, message: str) -> None:
    """The kubelet keeps at most 4096 bytes of it (a URI is at most 2048: the report fits)."""
    try:
        with open(path, "w") as log:
            log.write(message[:4096])
    except OSError:
        pass  # outside a pod (or a read-only log): stderr already has it
