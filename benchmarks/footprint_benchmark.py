"""Edge footprint: the operator's memory and CPU at idle with a few ModelDeployments, against a floor.

On an edge cluster the operator sits idle next to a handful of models for most of its life, so
what it costs there is its resident memory and its background CPU, not its throughput. A figure
alone says little on a shared two-core machine, so the same run measures a floor under the same
conditions: the least kopf operator (a script written at run time that watches
modeldeployments.modeldeploy.io with an empty event handler, kopf's own login from the same
kubeconfig, standalone, with event posting and resource scanning off as ours has them, logging at
INFO as ours does), run as a separate process beside the same N objects, over an idle window of the
same length.

Per process, over the window (the benchmark itself asks nothing of the apiserver meanwhile): VmRSS
at the start and end of the window and its peak (sampled), VmHWM (the high-water mark since the
process started, which includes converging), and average CPU in millicores (utime + stime from
/proc over wall time, x 1000). The operator runs twice, its probes every 30 s (the default) and
every 5 s, each time a fresh process that first brings the objects to Ready; the floor runs between
them. The operator's resync is its production default (300 s) unless `--resync` says otherwise, so
a 60 s window sees no resync. The operator runs from a copy of the working tree taken at the start
(or of a commit, `--source HEAD`), as the farm does: others edit the tree while this runs. Figures
only, no verdicts.

    MODELDEPLOY_SANDBOX_DIR=/tmp/sb-foot MODELDEPLOY_SANDBOX_NET=73 \\
        .venv/bin/python benchmarks/footprint_benchmark.py --json /tmp/footprint.json
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import io
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import CLOCK_TICKS, Obj, cpu_seconds, md_ready, model_deployment, rss_mib  # noqa: E402
from tests.conftest import start_operator, stop_operator  # noqa: E402

from modeldeploy_dev.sandbox.cluster import Sandbox  # noqa: E402

MD = "modeldeployments.modeldeploy.io"

# The floor. Login from the kubeconfig alone, so that kopf does not import the kubernetes client
# (which its default login would): the floor is kopf itself, not kopf plus a client it never uses.
FLOOR_OPERATOR = '''\
"""The least kopf operator: one watch of ModelDeployments, an empty handler, nothing else."""

import logging
from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False
    settings.scanning.disabled = True


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.event("modeldeploy.io", "v1alpha1", "modeldeployments")
def nothing(**_: Any) -> None:
    pass


if __name__ == "__main__":
    # as the operator logs: INFO, and kopf says "Handler 'nothing' succeeded." once per object seen
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kopf.run(standalone=True, clusterwide=True)
'''
FLOOR_SEEN = "Handler 'nothing' succeeded."


def log(message: str) -> None:
    print(f"[footprint {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def kubectl(sandbox: Sandbox, *args: str, input: str | None = None) -> str:
    """`Sandbox.kubectl`, failing with kubectl's own words rather than a bare exit status."""
    result = sandbox.kubectl(*args, input=input, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def proc_status(pid: int, key: str) -> float:
    """A numeric field of /proc/<pid>/status (kB fields come back in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return float(line.split()[1])
    return math.nan


def children(pid: int) -> list[int]:
    """Child processes would escape both meters (VmRSS and utime + stime are per process)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as file:
            found += [int(p) for p in file.read().split()]
    return found


def wait_until(check: Callable[[], bool], seconds: float, what: str, alive: Callable[[], None]) -> float:
    started = time.monotonic()
    while not check():
        alive()
        if time.monotonic() - started > seconds:
            raise RuntimeError(f"timed out after {seconds:g}s waiting for {what}")
        time.sleep(1)
    return time.monotonic() - started


def ready_count(sandbox: Sandbox, ns: str) -> int:
    items: list[Obj] = json.loads(kubectl(sandbox, "get", MD, "-n", ns, "-o", "json"))["items"]
    return sum(md_ready(item) for item in items)


def idle_window(pid: int, seconds: float, every: float, alive: Callable[[], None]) -> dict[str, Any]:
    """Only /proc reads from here on: the benchmark asks nothing of the apiserver or the process."""
    started = time.monotonic()
    cpu_start = cpu_seconds(pid)
    samples: list[tuple[float, float, float]] = []  # (seconds into the window, RSS MiB, CPU s since start)
    while True:
        alive()
        now = time.monotonic()
        samples.append((round(now - started, 2), round(rss_mib(pid), 2), round(cpu_seconds(pid) - cpu_start, 3)))
        if now - started >= seconds:
            break
        time.sleep(max(0.0, min(every, started + seconds - now)))
    wall = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_start
    rss = [s[1] for s in samples]
    return {
        "window_s": round(wall, 2),
        "rss_start_mib": rss[0],
        "rss_end_mib": rss[-1],
        "rss_peak_mib": max(rss),
        "rss_hwm_mib": round(proc_status(pid, "VmHWM") / 1024, 2),
        "cpu_s": round(cpu, 3),
        "cpu_millicores": round(1000 * cpu / wall, 2),
        "cpu_tick_millicores": round(1000 / CLOCK_TICKS / wall, 3),  # the meter's resolution over this window
        "threads": int(proc_status(pid, "Threads")),
        "children": children(pid),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "samples": samples,
    }


def process_alive(process: subprocess.Popen[bytes], log_path: Path, what: str) -> Callable[[], None]:
    def check() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}): {log_path.read_text(errors='replace')[-2000:]}")

    return check


def measure_operator(
    sandbox: Sandbox, args: argparse.Namespace, ns: str, workdir: Path, probe_interval: int
) -> dict[str, Any]:
    """A fresh operator process per probe interval, so each window starts from the same history."""
    label = f"operator-probe-{probe_interval}s"
    env = {"MODELDEPLOY_RESYNC_SECONDS": str(args.resync)}
    started = time.monotonic()
    operator = start_operator(sandbox.kubeconfig, workdir / f"{label}.log", env)
    log(f"{label} started (pid {operator.process.pid})")
    alive = process_alive(operator.process, operator.log_path, label)
    try:
        wait_until(lambda: ready_count(sandbox, ns) >= args.count, args.ready_timeout, f"{args.count} Ready", alive)
        converged = time.monotonic() - started
        log(f"{label}: {args.count}/{args.count} Ready after {converged:.1f}s; settling {args.settle_seconds:g}s")
        time.sleep(args.settle_seconds)
        log(f"{label}: idle window of {args.idle_seconds:g}s")
        result = idle_window(operator.process.pid, args.idle_seconds, args.sample_seconds, alive)
        result["ready_after_s"] = round(converged, 2)
        result["log"] = str(operator.log_path)
        log(f"{label}: RSS {result['rss_end_mib']:.1f} MiB, CPU {result['cpu_millicores']:.1f} millicores")
        return result
    finally:
        stop_operator(operator)


def measure_floor(sandbox: Sandbox, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    script = workdir / "floor_operator.py"
    script.write_text(FLOOR_OPERATOR)
    log_path = workdir / "floor-operator.log"
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    started = time.monotonic()
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(script)], stdout=output, stderr=subprocess.STDOUT, env=env, cwd=workdir
        )
    log(f"floor operator started (pid {process.pid})")
    alive = process_alive(process, log_path, "floor operator")
    try:
        # No endpoint to ask, by design (one would cost the floor memory): its log says when it has
        # seen every object, as the operator's Ready conditions do for it.
        wait_until(
            lambda: log_path.read_text(errors="replace").count(FLOOR_SEEN) >= args.count,
            args.ready_timeout,
            f"the floor to see {args.count} objects",
            alive,
        )
        seen = time.monotonic() - started
        log(f"floor: saw {args.count} objects after {seen:.1f}s; settling {args.settle_seconds:g}s")
        time.sleep(args.settle_seconds)
        text = log_path.read_text(errors="replace")
        if "Traceback" in text or " ERROR " in text:
            raise RuntimeError(f"floor operator logged an error: {text[-2000:]}")
        log(f"floor: idle window of {args.idle_seconds:g}s")
        result = idle_window(process.pid, args.idle_seconds, args.sample_seconds, alive)
        result["ready_after_s"] = round(seen, 2)
        result["log"] = str(log_path)
        log(f"floor: RSS {result['rss_end_mib']:.1f} MiB, CPU {result['cpu_millicores']:.1f} millicores")
        return result
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def set_probe_interval(sandbox: Sandbox, ns: str, count: int, seconds: int) -> None:
    patch = json.dumps({"spec": {"probing": {"intervalSeconds": seconds}}})
    for i in range(count):
        kubectl(sandbox, "patch", MD, f"m{i}", "-n", ns, "--type=merge", "-p", patch)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.rstrip()


def snapshot(source: str, workdir: Path) -> Path:
    """The operator and its CRDs as of the start, from the working tree or a commit; returns the copy.

    Others edit the working tree while a run lasts minutes: the three processes measured (and the
    replica farm, which imports the operator's model server) must all run the same code.
    """
    tree = workdir / "tree"
    if source == "worktree":
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / "operator" / "modeldeploy", tree / "operator" / "modeldeploy", ignore=ignore)
        shutil.copytree(ROOT / "crds", tree / "crds")
    else:
        archive = subprocess.run(
            ["git", "archive", source, "operator/modeldeploy", "crds"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
    check = subprocess.run(
        [sys.executable, "-c", "import modeldeploy.runner"],
        env={**os.environ, "PYTHONPATH": str(tree / "operator")},
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise RuntimeError(
            f"the operator from {source} does not import (mid-edit?); `--source HEAD` measures the last commit:\n"
            f"{check.stderr.strip()}"
        )
    return tree


def run(sandbox: Sandbox, args: argparse.Namespace, tree: Path, workdir: Path, results: dict[str, Any]) -> None:
    """Fills `results` as it goes: what was measured before a failure is still printed."""
    # every CRD, as the chart installs them: the operator would retry a missing one's watch at idle
    for path in sorted((tree / "crds").glob("*.yaml")):
        kubectl(sandbox, "apply", "--server-side", "--force-conflicts", "-f", str(path))
    kubectl(sandbox, "wait", "--for=condition=Established", f"crd/{MD}", "--timeout=30s")
    ns = f"bench-foot-{int(time.time())}"
    results["namespace"] = ns
    kubectl(sandbox, "create", "namespace", ns)
    try:
        wait_until(
            lambda: sandbox.kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0,
            60,
            "the namespace's default ServiceAccount",
            lambda: None,
        )
        items = [model_deployment(f"m{i}", probe_interval=args.probe_interval) for i in range(args.count)]
        kubectl(
            sandbox,
            "create",
            "-n",
            ns,
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        )
        runs = results["runs"]
        runs["ours"] = measure_operator(sandbox, args, ns, workdir, args.probe_interval)
        runs["floor"] = measure_floor(sandbox, args, workdir)
        if args.fast_probe_interval:
            set_probe_interval(sandbox, ns, args.count, args.fast_probe_interval)
            runs["ours_fast"] = measure_operator(sandbox, args, ns, workdir, args.fast_probe_interval)
    finally:
        # nothing of ours holds a finalizer, so the objects go with no operator running
        sandbox.kubectl("delete", MD, "--all", "-n", ns, "--wait=false", check=False)
        sandbox.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def machine(source: str) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "source": source,
        "commit": git("rev-parse", "--short", source if source != "worktree" else "HEAD"),
        # with the working tree: which uncommitted state of the operator, exactly
        "operator_diff_sha256": (
            hashlib.sha256(git("diff", "HEAD", "--", "operator").encode()).hexdigest()[:12]
            if source == "worktree"
            else None
        ),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "kopf": importlib.metadata.version("kopf"),
        "kernel": platform.release(),
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def below_resolution(run: dict[str, Any], key: str) -> float | None:
    """Not one clock tick of CPU over the window is less than a tick, not zero: the bound, or None."""
    if run.get("cpu_s") != 0:
        return None
    return {"cpu_millicores": run.get("cpu_tick_millicores"), "cpu_s": 1 / CLOCK_TICKS}.get(key)


def cell(run: dict[str, Any], key: str, unit: str, digits: int) -> str:
    bound = below_resolution(run, key)
    return f"< {bound:.2g}{unit}" if bound is not None else fmt(run.get(key), unit, digits)


def ratio(ours: dict[str, Any], floor: dict[str, Any], key: str) -> str:
    value, base = ours.get(key), floor.get(key)
    if not isinstance(value, int | float) or math.isnan(value) or below_resolution(ours, key) is not None:
        return "-"
    bound = below_resolution(floor, key)
    if bound is not None:
        return f"> {value / bound:.0f}x"
    if not isinstance(base, int | float) or not base:
        return "-"
    return f"{value / base:.2f}x"


ROWS = (  # metric, key, unit, decimals, whether a ratio means anything
    ("RSS at idle start", "rss_start_mib", " MiB", 1, True),
    ("RSS at idle end", "rss_end_mib", " MiB", 1, True),
    ("RSS peak over the window", "rss_peak_mib", " MiB", 1, True),
    ("RSS high-water mark since start (VmHWM)", "rss_hwm_mib", " MiB", 1, True),
    ("CPU, average over the window", "cpu_millicores", " millicores", 1, True),
    ("CPU seconds over the window", "cpu_s", " s", 2, True),
    ("threads", "threads", "", 0, True),
    ("load average (1 min) at window end", "loadavg_1m_at_end", "", 2, False),
)


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    m, runs = results["machine"], results["runs"]
    floor = runs.get("floor", {})
    columns = [("ours", args.probe_interval)]
    if args.fast_probe_interval:
        columns.append(("ours_fast", args.fast_probe_interval))
    lines = [
        f"date {m['date']}; {m['nproc']} cores, load at start {m['loadavg_at_start']}; python {m['python']}, kopf {m['kopf']}",  # noqa: E501
        f"command: {m['command']}",
        f"operator: {m['source']} at {m['commit']}"
        + (f", operator diff sha256 {m['operator_diff_sha256']}" if m["operator_diff_sha256"] else ""),
        *(
            [f"FAILED: {results['error'][:300]} (figures below are those measured before)"]
            if "error" in results
            else []
        ),
        f"models: {args.count} ModelDeployments, 1 replica each, served by the sandbox's replica farm; each window "
        "starts once all are Ready (the floor's: once it has seen all)",
        f"probe interval: {', '.join(f'{seconds} s' for _, seconds in columns)}; operator resync {args.resync:g} s",
        f"idle window: {args.idle_seconds:g} s after {args.settle_seconds:g} s settling, sampled every "
        f"{args.sample_seconds:g} s",
        "floor: kopf alone, one watch of modeldeployments.modeldeploy.io, empty event handler, same kubeconfig",
        "",
        "| metric | floor | " + " | ".join(f"operator, probes every {s} s | ratio" for _, s in columns) + " |",
        "|---|---|" + "---|---|" * len(columns),
    ]
    for metric, key, unit, digits, compared in ROWS:
        cells = [cell(floor, key, unit, digits)]
        for name, _ in columns:
            ours = runs.get(name, {})
            cells += [cell(ours, key, unit, digits), ratio(ours, floor, key) if compared else ""]
        lines.append(f"| {metric} | {' | '.join(cells)} |")
    ready = [f"{runs[name]['ready_after_s']:.1f} s ({s} s probes)" for name, s in columns if name in runs]
    if "ready_after_s" in floor:
        ready.append(f"floor {floor['ready_after_s']:.1f} s (all seen)")
    if ready:
        lines.append(f"\nprocess start -> all {args.count} Ready: {', '.join(ready)}")
    stray = {name: run["children"] for name, run in runs.items() if run.get("children")}
    if stray:
        lines.append(f"child processes, not counted above: {stray}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10, help="ModelDeployments present throughout")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="the idle window, per process")
    parser.add_argument("--sample-seconds", type=float, default=1.0, help="RSS sampling period")
    parser.add_argument("--settle-seconds", type=float, default=10.0, help="wait after all Ready, before the window")
    parser.add_argument("--probe-interval", type=int, default=30, help="spec.probing.intervalSeconds")
    parser.add_argument("--fast-probe-interval", type=int, default=5, help="a second operator run; 0 skips it")
    parser.add_argument("--resync", type=float, default=300.0, help="the operator's MODELDEPLOY_RESYNC_SECONDS")
    parser.add_argument("--ready-timeout", type=float, default=300.0, help="seconds for all objects to be Ready")
    parser.add_argument(
        "--source", default="worktree", help="the operator measured: `worktree` (a copy taken at start) or a commit"
    )
    parser.add_argument("--json", type=Path, help="write every figure here, RSS and CPU samples included")
    args = parser.parse_args()

    results: dict[str, Any] = {
        "machine": machine(args.source),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"},
        "runs": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="footprint-benchmark-"))
    log(f"operator snapshot and logs in {workdir}")
    try:
        tree = snapshot(args.source, workdir)
    except (RuntimeError, subprocess.CalledProcessError) as error:
        log(str(error))
        return 2
    os.environ["PYTHONPATH"] = str(tree / "operator")  # the operator's processes and a farm started here
    sandbox = Sandbox()
    started_here = not sandbox.healthy()
    try:
        sandbox.up()
        run(sandbox, args, tree, workdir, results)
    except Exception as error:  # print what was measured before it
        log(f"run failed: {traceback.format_exc()}")
        results["error"] = repr(error)
    finally:
        if started_here and not os.environ.get("MODELDEPLOY_KEEP_SANDBOX"):
            sandbox.down()
    print(report(results, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if "error" in results else 0


if __name__ == "__main__":
    sys.exit(main())
