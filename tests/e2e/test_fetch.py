"""The storage initializer against a real S3-compatible server (moto) and a real web server, on loopback.

What a model pod's init container does: `modeldeploy fetch URI DEST` with the credentials and
endpoint in its environment, a folder that is there whole or not at all, and one line of
reason in the termination log when it fails.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import obstore
import pytest

from modeldeploy.storage.fetch import MARKER, FetchFailed, fetch
from modeldeploy_dev.s3 import S3Server, moto_venv, s3_server

BUCKET = "models"
MODEL = os.urandom(300_000)
SETTINGS = b'{"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel"}'


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    venv = moto_venv()
    with s3_server(venv, tmp_path_factory.mktemp("moto") / "moto.log") as server:
        server.create_bucket(BUCKET)
        store = server.store(BUCKET)
        obstore.put(store, "iris/2.0.0/model.joblib", MODEL)
        obstore.put(store, "iris/2.0.0/model-settings.json", SETTINGS)
        obstore.put(store, "iris/2.0.0/extra/notes.txt", b"trained on 2026-11-28")
        # what an S3 console's "create folder" leaves: 0-byte objects whose keys end in "/"
        # (obstore normalises a trailing "/" away, so they are put with a plain request)
        for marker in ("iris/3.0.0/", "iris/3.0.0/weights/"):
            httpx.put(f"{server.endpoint}/{BUCKET}/{marker}", content=b"").raise_for_status()
        obstore.put(store, "iris/3.0.0/weights/model.joblib", MODEL)
        obstore.put(store, "clash/model", b"a file")  # and a folder of the same name below
        obstore.put(store, "clash/model/weights.bin", b"weights")
        yield server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return s3


@pytest.mark.usefixtures("s3_env")
def test_a_prefix_is_fetched_whole_and_a_second_run_reuses_it(tmp_path: Path) -> None:
    result = fetch(f"s3://{BUCKET}/iris/2.0.0", tmp_path)
    model = tmp_path / "model"
    assert sorted(result.files) == ["extra/notes.txt", "model-settings.json", "model.joblib"]
    assert (model / "model.joblib").read_bytes() == MODEL
    assert (model / "extra" / "notes.txt").read_bytes() == b"trained on 2026-11-28"
    assert result.bytes == len(MODEL) + len(SETTINGS) + len(b"trained on 2026-11-28")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "no temporary folder left behind"
    again = fetch(f"s3://{BUCKET}/iris/2.0.0", tmp_path)
    assert again.reused
    assert (model / MARKER).exists()


@pytest.mark.usefixtures("s3_env")
def test_one_object_with_its_checksum(tmp_path: Path) -> None:
    digest = hashlib.sha256(MODEL).hexdigest()
    result = fetch(f"s3://{BUCKET}/iris/2.0.0/model.joblib", tmp_path, sha256=digest.upper())
    assert (result.files, result.sha256) == (["model.joblib"], digest)
    assert (tmp_path / "model" / "model.joblib").read_bytes() == MODEL


@pytest.mark.usefixtures("s3_env")
def test_a_wrong_checksum_leaves_nothing_half_there_and_keeps_what_was_fetched_before(tmp_path: Path) -> None:
    fetch(f"s3://{BUCKET}/iris/2.0.0/model-settings.json", tmp_path)
    with pytest.raises(
        FetchFailed, match=r"^s3://models/iris/2.0.0/model.joblib: sha256 mismatch: expected 0{64}, got "
    ):
        fetch(f"s3://{BUCKET}/iris/2.0.0/model.joblib", tmp_path, sha256="0" * 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [MARKER, "model-settings.json"]


@pytest.mark.usefixtures("s3_env")
@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        (
            "s3://models/iris/9.9.9",
            "s3://models/iris/9.9.9: NoSuchKey (no object there, and none under it as a prefix)",
        ),
        ("s3://no-such-bucket/iris", "s3://no-such-bucket/iris: NoSuchBucket"),
        ("s4://models/iris", "s4://models/iris: unknown scheme 's4'"),
    ],
)
def test_a_missing_artifact_is_one_line_naming_it(tmp_path: Path, uri: str, reason: str) -> None:
    with pytest.raises(FetchFailed) as failed:
        fetch(uri, tmp_path)
    assert str(failed.value).startswith(reason)
    assert "\n" not in str(failed.value)
    assert not (tmp_path / "model").exists()


@pytest.mark.usefixtures("s3_env")
def test_sha256_of_a_prefix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FetchFailed, match="sha256 checks a single-file artifact; this URI holds 3 objects"):
        fetch(f"s3://{BUCKET}/iris/2.0.0", tmp_path, sha256="0" * 64)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modeldeploy.cli", "fetch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_the_init_container_command_as_the_kubelet_runs_it(tmp_path: Path, s3: S3Server) -> None:
    """Credentials only in the environment (envFrom a Secret); the failure's reason in the termination log.

    (moto accepts any signature, so a wrong key cannot be shown failing here.)
    """
    log = tmp_path / "termination-log"
    ok = _cli([f"s3://{BUCKET}/iris/2.0.0", str(tmp_path / "mnt"), "--termination-log", str(log)], s3.env())
    assert ok.returncode == 0, ok.stderr
    assert "s3://models/iris/2.0.0: 3 file(s)" in ok.stderr
    assert (tmp_path / "mnt" / "model" / "model.joblib").read_bytes() == MODEL
    # what the operator reads back from the init container's status (status.model)
    assert json.loads(log.read_text()) == {"uri": f"s3://{BUCKET}/iris/2.0.0", "sha256": None, "files": 3}
    one = _cli(
        [f"s3://{BUCKET}/iris/2.0.0/model.joblib", str(tmp_path / "one"), "--termination-log", str(log)], s3.env()
    )
    assert one.returncode == 0, one.stderr
    assert json.loads(log.read_text())["sha256"] == hashlib.sha256(MODEL).hexdigest()

    missing = _cli([f"s3://{BUCKET}/iris/4.0.0", str(tmp_path / "mnt2"), "--termination-log", str(log)], s3.env())
    assert missing.returncode == 1
    assert log.read_text() == "s3://models/iris/4.0.0: NoSuchKey (no object there, and none under it as a prefix)"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "model.onnx").write_bytes(MODEL)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_file_on_a_web_server(tmp_path: Path, web: str) -> None:
    result = fetch(f"{web}/model.onnx", tmp_path / "mnt", sha256=hashlib.sha256(MODEL).hexdigest())
    assert result.files == ["model.onnx"]
    assert (tmp_path / "mnt" / "model" / "model.onnx").read_bytes() == MODEL
    with pytest.raises(FetchFailed, match=r"/missing.onnx: not found$"):
        fetch(f"{web}/missing.onnx", tmp_path / "mnt2")


@pytest.fixture
def presigning(tmp_path: Path) -> Iterator[str]:
    """A server like S3 behind a presigned URL: GET with the right query only, HEAD refused, a redirect first."""
    signature = "X-Amz-Signature=abc123&X-Amz-Expires=300"

    class Presigned(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(403)  # a presigned GET URL is signed for GET alone
            self.end_headers()

        def do_GET(self) -> None:
            if self.path == f"/old/model.onnx?{signature}":
                self.send_response(302)
                self.send_header("Location", f"/bucket/model.onnx?{signature}")
                self.end_headers()
            elif self.path == f"/bucket/model.onnx?{signature}":
                self.send_response(200)
                self.send_header("Content-Length", str(len(MODEL)))
                self.end_headers()
                self.wfile.write(MODEL)
            else:
                self.send_response(403)
                self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Presigned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/old/model.onnx?{signature}"
    server.shutdown()
    server.server_close()


def test_a_presigned_url_is_one_get_with_its_query_and_redirects_followed(tmp_path: Path, presigning: str) -> None:
    result = fetch(presigning, tmp_path / "mnt", sha256=hashlib.sha256(MODEL).hexdigest())
    assert result.files == ["model.onnx"]  # named after the path, not the query
    assert (tmp_path / "mnt" / "model" / "model.onnx").read_bytes() == MODEL
    assert result.bytes == len(MODEL)
    unsigned = presigning.split("?")[0]
    with pytest.raises(FetchFailed, match=r"/old/model.onnx: HTTP 403 Forbidden$"):
        fetch(unsigned, tmp_path / "mnt2")


@pytest.mark.usefixtures("s3_env")
@pytest.mark.parametrize("uri", ["s3://models/iris/3.0.0/", "s3://models/iris/3.0.0"])
def test_folder_marker_objects_are_not_files(tmp_path: Path, uri: str) -> None:
    result = fetch(uri, tmp_path)
    assert result.files == ["weights/model.joblib"]
    assert (tmp_path / "model" / "weights" / "model.joblib").read_bytes() == MODEL


@pytest.mark.usefixtures("s3_env")
def test_an_object_that_is_also_a_folder_is_refused_not_dropped(tmp_path: Path) -> None:
    with pytest.raises(FetchFailed, match="object 'model' is also a folder of other objects"):
        fetch(f"s3://{BUCKET}/clash", tmp_path)
