"""Fetch throughput of a large artifact from a local S3 server: the storage initializer against bare clients.

One object (`--mib`, 200 by default) in a moto S3 server on loopback (its own venv, as the
e2e tests build it). Timed as whole processes, `--rounds` times each, alternating:
- `ours`: `modeldeploy fetch s3://... DEST` as the init container runs it (stream to a
  temporary folder, SHA-256 of every byte, rename into place, termination report);
- `bare-obstore`: the same library with nothing of ours: one GET streamed into a file (the floor);
- `boto3`: the AWS SDK's own `download_file` (managed transfer, parallel ranged GETs), from the
  moto venv, which has it.
Printed: median seconds and MiB/s for each, and ours over each of the others. A local S3
server on a shared 2-core machine measures the client's overhead, not a network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT)]

import obstore  # noqa: E402

from modeldeploy_dev.s3 import S3Server, moto_venv, s3_server  # noqa: E402

BUCKET = "bench"
KEY = "iris/big/model.bin"

BARE = """
import sys, obstore
from obstore.store import S3Store
store = S3Store(sys.argv[1], config={"endpoint": sys.argv[2], "region": "us-east-1", "access_key_id": "k",
    "secret_access_key": "s"}, client_options={"allow_http": True})
with open(sys.argv[4], "wb") as out:
    for chunk in obstore.get(store, sys.argv[3]).stream(min_chunk_size=8 << 20):
        out.write(chunk)
"""

BOTO = """
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[2], region_name="us-east-1", aws_access_key_id="k",
    aws_secret_access_key="s")
s3.download_file(sys.argv[1], sys.argv[3], sys.argv[4])
"""


def upload(server: S3Server, mib: int) -> None:
    server.create_bucket(BUCKET)
    block = os.urandom(1 << 20)
    obstore.put(server.store(BUCKET), KEY, b"".join(block for _ in range(mib)))


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed: {result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    venv = moto_venv()
    work = Path(tempfile.mkdtemp(prefix="fetch-bench-"))
    try:
        with s3_server(venv, work / "moto.log") as server:
            upload(server, args.mib)
            env = server.env()
            uri = f"s3://{BUCKET}/{KEY}"
            runs: dict[str, list[float]] = {"ours": [], "bare-obstore": [], "boto3": []}
            for round_ in range(args.rounds):
                dest = work / f"round-{round_}"
                commands = {
                    "ours": [
                        sys.executable,
                        "-m",
                        "modeldeploy.cli",
                        "fetch",
                        uri,
                        str(dest / "ours"),
                        "--termination-log",
                        str(work / "log"),
                    ],
                    "bare-obstore": [sys.executable, "-c", BARE, BUCKET, server.endpoint, KEY, str(dest / "bare")],
                    "boto3": [str(venv.python), "-c", BOTO, BUCKET, server.endpoint, KEY, str(dest / "boto")],
                }
                dest.mkdir()
                for name, command in commands.items():
                    runs[name].append(timed(command, env))
                shutil.rmtree(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(times) for name, times in runs.items()}
    print(f"fetch of one {args.mib} MiB object from moto on loopback, median of {args.rounds} (whole process):")
    for name, seconds in medians.items():
        print(f"  {name:13s} {seconds:6.2f} s  {args.mib / seconds:7.1f} MiB/s")
    for other in ("bare-obstore", "boto3"):
        print(f"  ours / {other}: {medians['ours'] / medians[other]:.2f}")


if __name__ == "__main__":
    main()
