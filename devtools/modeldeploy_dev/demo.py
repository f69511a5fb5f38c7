"""`make demo`: from a clean clone to a working, drifting, self-healing model deployment.

It drives only real things: the sandbox control plane, the Helm chart (CRD, RBAC, operator
Deployment), the operator process itself (run locally under the chart's ServiceAccount,
because kwok cannot run the operator's pod), the replica farm, kubectl and inference traffic
on loopback. Every step prints what it does and how long it took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import obstore

from modeldeploy.render.model import DEFAULT_FETCHER_IMAGE
from modeldeploy_dev.mlserver import MLSERVER_IMAGE, ensure_mlserver_venv, image_stand_in, train_iris
from modeldeploy_dev.s3 import moto_venv, start_s3_server
from modeldeploy_dev.sandbox import build
from modeldeploy_dev.sandbox.cluster import Sandbox, kubectl_binary
from modeldeploy_dev.sandbox.kubelet import FARM_DIR, IMAGES_FILE
from modeldeploy_dev.sandbox.traffic import ServiceTraffic, iris_rows, send_rows, service_endpoints

NAMESPACE = "models"
RELEASE = "modeldeploy"
OPERATOR_NAMESPACE = "modeldeploy-system"
ROOT = Path(__file__).resolve().parents[2]
FAULT = "farm.modeldeploy.io/fault"


class Demo:
    def __init__(self) -> None:
        self.sandbox = Sandbox()
        self.started = time.monotonic()
        self.pid_file = self.sandbox.directory / "demo-operator.pid"
        self.s3_pid_file = self.sandbox.directory / "demo-s3.pid"
        self.images_file = self.sandbox.directory / FARM_DIR / IMAGES_FILE

    # ---- output -------------------------------------------------------------------------------
    def step(self, text: str) -> None:
        print(f"\n==> [{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def say(self, text: str) -> None:
        print(f"    {text}", flush=True)

    # ---- tools --------------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None) -> str:
        command = [kubectl_binary(), f"--kubeconfig={kubeconfig or self.sandbox.kubeconfig}", *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def helm(self, *args: str) -> str:
        helm = str(build.binary(build.HELM))
        result = subprocess.run(
            [helm, f"--kubeconfig={self.sandbox.kubeconfig}", *args], capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 120) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if check():
                took = time.monotonic() - started
                self.say(f"{what} after {took:.1f}s")
                return took
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for: {what}")

    def condition(self, name: str, type_: str) -> dict[str, str]:
        md = json.loads(self.kubectl("-n", NAMESPACE, "get", "md", name, "-o", "json"))
        for item in md.get("status", {}).get("conditions", []):
            if item["type"] == type_:
                return dict(item)
        return {}

    def pods(self, name: str) -> list[dict[str, object]]:
        items = json.loads(
            self.kubectl("-n", NAMESPACE, "get", "pods", "-l", f"modeldeploy.io/name={name}", "-o", "json")
        )
        return [p for p in items["items"] if p["status"].get("phase") == "Running"]

    # ---- the story ----------------------------------------------------------------------------
    def up(self) -> None:
        self.step("Starting the sandbox control plane (first run builds it from Go modules: ~10 min)")
        self.sandbox.up()

        self.step("Installing the Helm chart: CRD, least-privilege RBAC, operator Deployment")
        self.kubectl("create", "namespace", NAMESPACE, check=False)
        self.adopt_crd()
        self.helm(
            "upgrade",
            "--install",
            RELEASE,
            str(ROOT / "charts" / "modeldeploy"),
            "--namespace",
            OPERATOR_NAMESPACE,
            "--create-namespace",
            "--wait=false",
        )
        self.say(self.helm("list", "-n", OPERATOR_NAMESPACE).strip().splitlines()[-1])

        self.step("Running the operator locally under the chart's ServiceAccount (kwok cannot run its pod)")
        self.start_operator()

        self.step("Applying examples/minimal.yaml and examples/full.yaml")
        for example in ("minimal.yaml", "full.yaml"):
            self.say(self.kubectl("-n", NAMESPACE, "apply", "-f", str(ROOT / "examples" / example)).strip())
        for name in ("iris", "iris-full"):  # demo pace: probe every 3 s, judge on one failed round
            self.kubectl(
                "-n",
                NAMESPACE,
                "patch",
                "md",
                name,
                "--type=merge",
                "-p",
                json.dumps({"spec": {"probing": {"intervalSeconds": 3, "timeoutSeconds": 1, "failureThreshold": 1}}}),
            )
        for name in ("iris", "iris-full"):
            self.wait(f"md/{name} Ready", lambda n=name: self.condition(n, "Ready").get("status") == "True")  # type: ignore[misc]
        print(self.kubectl("-n", NAMESPACE, "get", "md"), flush=True)

        self.story_data_drift()
        self.story_broken_replica()
        self.story_hand_edit()
        self.story_canary_rolled_back()  # before story 4, which has the farm run that image's pods for real
        self.story_model_from_s3()

        self.step(f"Done in {time.monotonic() - self.started:.0f}s. Try:")
        self.say(f"kubectl --kubeconfig {self.sandbox.kubeconfig} -n {NAMESPACE} describe md iris-full")
        self.say("make demo-down   # stops the operator, uninstalls the chart, stops the sandbox")

    def adopt_crd(self) -> None:
        """CRDs applied earlier with kubectl (the test suite does) become the release's own."""
        for plural in ("modeldeployments", "modelruntimes", "clustermodelruntimes"):
            crd = f"crd/{plural}.modeldeploy.io"
            if self.kubectl("get", crd, check=False, input=None).strip() == "":
                continue
            self.kubectl("label", crd, "app.kubernetes.io/managed-by=Helm", "--overwrite")
            self.kubectl(
                "annotate",
                crd,
                f"meta.helm.sh/release-name={RELEASE}",
                f"meta.helm.sh/release-namespace={OPERATOR_NAMESPACE}",
                "--overwrite",
            )

    def story_data_drift(self) -> None:
        self.step("Story 1: traffic like the training data, then traffic whose petal length shifted by +2 cm")
        time.sleep(4)  # one probe round: every replica's counters get their reference point
        addresses = [(str(p["status"]["podIP"]), 8080) for p in self.pods("iris-full")]  # type: ignore[index]
        sent = asyncio.run(send_rows(addresses, "iris", iris_rows(600, seed=11)))
        self.say(f"sent {sent} baseline-like rows to {len(addresses)} replicas")
        self.wait("600 samples evaluated", lambda: self.drift_samples("iris-full") >= 600, 30)
        self.say(
            f"Drifted={self.condition('iris-full', 'Drifted').get('status')}: "
            f"{self.condition('iris-full', 'Drifted').get('message')}"
        )
        sent = asyncio.run(send_rows(addresses, "iris", iris_rows(1200, shift=(0, 0, 2.0, 0), seed=12)))
        self.say(f"sent {sent} shifted rows")
        self.wait(
            "Drifted=True (DataDrift)", lambda: self.condition("iris-full", "Drifted").get("reason") == "DataDrift", 30
        )
        drifted = self.condition("iris-full", "Drifted")
        self.say(f"Drifted={drifted['status']} {drifted['reason']}: {drifted['message']}")
        self.say(f"Ready stays {self.condition('iris-full', 'Ready').get('status')}: drift is news, not an outage")

    def drift_samples(self, name: str) -> int:
        md = json.loads(self.kubectl("-n", NAMESPACE, "get", "md", name, "-o", "json"))
        return int(md.get("status", {}).get("drift", {}).get("data", {}).get("samples", 0))

    def story_broken_replica(self) -> None:
        self.step("Story 2: one replica of md/iris starts failing its health checks")
        self.kubectl("-n", NAMESPACE, "scale", "md/iris", "--replicas=3")
        self.wait("3 replicas probed healthy", lambda: self.healthy_summary("iris") == "3/3", 60)
        victim = str(self.pods("iris")[0]["metadata"]["name"])  # type: ignore[index]
        self.kubectl("-n", NAMESPACE, "annotate", "pod", victim, f"{FAULT}=unhealthy", "--overwrite")
        self.wait("ModelHealthy=False", lambda: self.condition("iris", "ModelHealthy").get("status") == "False", 30)
        self.say(f"ModelHealthy: {self.condition('iris', 'ModelHealthy').get('message')}")
        self.kubectl("-n", NAMESPACE, "annotate", "pod", victim, f"{FAULT}-")
        self.wait("recovered, Ready=True", lambda: self.condition("iris", "Ready").get("status") == "True", 30)
        print(
            self.kubectl(
                "-n",
                NAMESPACE,
                "get",
                "events",
                "--field-selector=involvedObject.kind=ModelDeployment,involvedObject.name=iris",
                "--sort-by=.lastTimestamp",
            ).strip()[-1200:],
            flush=True,
        )

    def healthy_summary(self, name: str) -> str:
        md = json.loads(self.kubectl("-n", NAMESPACE, "get", "md", name, "-o", "json"))
        return str(md.get("status", {}).get("health", {}).get("summary", ""))

    def story_hand_edit(self) -> None:
        self.step("Story 3: someone edits the Deployment by hand (image changed)")
        self.kubectl("-n", NAMESPACE, "set", "image", "deployment/iris", "model-server=registry.invalid/hotfix:latest")

        def image() -> str:
            deployment = json.loads(self.kubectl("-n", NAMESPACE, "get", "deployment", "iris", "-o", "json"))
            return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

        self.wait("the declared image restored", lambda: image() == "ghcr.io/modeldeploy/modeldeploy:0.1.0", 30)
        events = self.kubectl(
            "-n",
            NAMESPACE,
            "get",
            "events",
            "--field-selector=reason=ConfigDriftCorrected",
            "-o",
            "jsonpath={range .items[*]}{.message}{'\\n'}{end}",
        )
        self.say(f"Warning ConfigDriftCorrected: {events.strip().splitlines()[-1]}")

    def story_canary_rolled_back(self) -> None:
        self.step("Story 4: a canary of a version whose predictions are shifted is rolled back on its own evidence")
        self.say(self.kubectl("-n", NAMESPACE, "apply", "-f", str(ROOT / "examples" / "canary.yaml")).strip())
        self.wait("md/iris-rollout Ready", lambda: self.condition("iris-rollout", "Ready").get("status") == "True")

        def endpoints() -> list[tuple[str, int]]:
            service = json.loads(self.kubectl("-n", NAMESPACE, "get", "service", "iris-rollout", "-o", "json"))
            pods = json.loads(self.kubectl("-n", NAMESPACE, "get", "pods", "-o", "json"))["items"]
            return service_endpoints(service, pods)

        with ServiceTraffic(endpoints, "iris", per_second=30) as traffic:
            self.say("traffic: 30 requests/s to the Service's ready pods, picked as kube-proxy picks")
            shifted = {"spec": {"model": {"version": "2.0.0"}, "podAnnotations": {FAULT: "shift=2.5"}}}
            self.kubectl("-n", NAMESPACE, "patch", "md", "iris-rollout", "--type=merge", "-p", json.dumps(shifted))
            self.say("version 2.0.0 applied; the farm makes its model predict from features moved by +2.5 cm")

            def phase() -> str:
                md = json.loads(self.kubectl("-n", NAMESPACE, "get", "md", "iris-rollout", "-o", "json"))
                return str((md.get("status", {}).get("rollout") or {}).get("phase"))

            self.wait("the canary running", lambda: phase() == "Progressing", 30)
            self.say(self.plugin("rollout", "status", "iris-rollout"))
            self.wait("the canary rolled back", lambda: phase() == "RolledBack", 120)
            self.say(f"{traffic.sent} requests sent meanwhile, answered: {dict(sorted(traffic.answered.items()))}")
        stalled = self.condition("iris-rollout", "Stalled")
        self.say(f"Stalled={stalled['status']} {stalled['reason']}: {stalled['message']}")
        print(self.plugin("rollout", "history", "iris-rollout"), flush=True)
        print(self.kubectl("-n", NAMESPACE, "get", "md", "iris-rollout", "-o", "wide"), flush=True)

    def plugin(self, *args: str) -> str:
        """`kubectl modeldeploy ...`, the plugin found on the PATH as a user's kubectl finds it."""
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        env["KUBECONFIG"] = str(self.sandbox.kubeconfig)  # kubectl hands a plugin no flags given before its name
        command = [kubectl_binary(), "modeldeploy", *args, "-n", NAMESPACE]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
        return (result.stdout + result.stderr).strip()

    def story_model_from_s3(self) -> None:
        self.step("Story 5: a scikit-learn model trained here, put in a local S3, served by MLServer from ten lines")
        self.say(
            "MLServer 1.7.1 and moto (an S3 server) run from virtualenvs of their own; the first run installs them"
        )
        mlserver, moto = ensure_mlserver_venv(), moto_venv()
        self.stop_s3()
        server, process = start_s3_server(moto, self.sandbox.logs / "demo-s3.log", detach=True)
        self.s3_pid_file.write_text(str(process.pid))
        server.create_bucket("models")
        folder = train_iris(mlserver, self.sandbox.directory / "demo-model" / "iris")
        joblib = (folder / "model.joblib").read_bytes()
        obstore.put(server.store("models"), "iris/1.0.0/model.joblib", joblib)
        self.say(f"trained iris with MLServer's scikit-learn; s3://models/iris/1.0.0/model.joblib on {server.endpoint}")

        # kwok runs no containers: the farm runs this pod's images for real, as a kubelet would
        self.images_file.parent.mkdir(parents=True, exist_ok=True)
        modeldeploy = str(Path(sys.executable).parent / "modeldeploy")
        self.images_file.write_text(
            json.dumps(
                {
                    MLSERVER_IMAGE: image_stand_in(mlserver),
                    DEFAULT_FETCHER_IMAGE: {
                        "executables": {"modeldeploy": modeldeploy},
                        "terminationLogArg": "--termination-log",
                    },
                },
                indent=2,
            )
        )
        credentials = ["--from-literal=" + f"{k}={v}" for k, v in server.env().items()]
        self.kubectl("-n", NAMESPACE, "delete", "secret", "s3-credentials", "--ignore-not-found")
        self.kubectl("-n", NAMESPACE, "create", "secret", "generic", "s3-credentials", *credentials)
        example = ROOT / "examples" / "sklearn-s3.yaml"
        manifest = "\n".join(line for line in example.read_text().splitlines() if not line.startswith("#"))
        print(manifest, flush=True)
        self.say(self.kubectl("-n", NAMESPACE, "apply", "-f", str(example)).strip())
        fast = {"spec": {"probing": {"intervalSeconds": 3, "timeoutSeconds": 1, "failureThreshold": 1}}}
        self.kubectl("-n", NAMESPACE, "patch", "md", "iris-sklearn", "--type=merge", "-p", json.dumps(fast))
        self.wait(
            "md/iris-sklearn Ready: fetched from S3, loaded by MLServer, probed",
            lambda: (
                self.condition("iris-sklearn", "Ready").get("status") == "True"
                and self.condition("iris-sklearn", "ModelHealthy").get("status") == "True"
            ),
            180,
        )
        print(self.kubectl("-n", NAMESPACE, "get", "md", "iris-sklearn", "-o", "wide"), flush=True)
        md = json.loads(self.kubectl("-n", NAMESPACE, "get", "md", "iris-sklearn", "-o", "json"))
        self.say(f"status.model: {json.dumps(md['status'].get('model'))}")
        ip = str(self.pods("iris-sklearn")[0]["status"]["podIP"])  # type: ignore[index]
        answer = httpx.post(
            f"http://{ip}:8080/v2/models/iris/infer",
            json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [6.3, 3.3, 6.0, 2.5]}]},
            timeout=10,
        ).json()
        self.say(
            f"MLServer at {ip}:8080 (version {answer.get('model_version')}) predicts {answer['outputs'][0]['data']}"
        )

    def stop_s3(self) -> None:
        if not self.s3_pid_file.exists():
            return
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(self.s3_pid_file.read_text()), signal.SIGTERM)
        self.s3_pid_file.unlink()

    # ---- the operator under the chart's credentials -------------------------------------------
    def start_operator(self) -> None:
        self.stop_operator()
        manifest = self.helm("get", "manifest", RELEASE, "-n", OPERATOR_NAMESPACE)
        account = next(
            doc["metadata"]["name"] for doc in _yaml_documents(manifest) if doc and doc.get("kind") == "ServiceAccount"
        )
        token = self.kubectl("-n", OPERATOR_NAMESPACE, "create", "token", account, "--duration=2h").strip()
        config = json.loads(self.sandbox.kubeconfig.read_text())
        config["users"] = [{"name": account, "user": {"token": token}}]
        config["contexts"] = [{"name": "demo", "context": {"cluster": "sandbox", "user": account}}]
        config["current-context"] = "demo"
        kubeconfig = self.sandbox.directory / "operator-kubeconfig"
        kubeconfig.write_text(json.dumps(config))
        kubeconfig.chmod(0o600)
        log = open(self.sandbox.logs / "operator.log", "ab")  # noqa: SIM115 - handed to the child
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modeldeploy",
                "run",
                f"--kubeconfig={kubeconfig}",
                "--metrics-port=19090",
                "--health-port=18081",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MODELDEPLOY_VERIFY_PULL_SECRETS": "false"},
        )
        log.close()
        self.pid_file.write_text(str(process.pid))
        self.say(
            f"operator pid {process.pid} as system:serviceaccount:{OPERATOR_NAMESPACE}:{account}; "
            f"metrics on http://127.0.0.1:19090/metrics, log {self.sandbox.logs / 'operator.log'}"
        )

    def stop_operator(self) -> None:
        if not self.pid_file.exists():
            return
        pid = int(self.pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        self.pid_file.unlink()

    def down(self) -> None:
        self.step("Stopping the operator, uninstalling the chart, stopping the sandbox")
        self.stop_s3()
        self.images_file.unlink(missing_ok=True)
        if self.sandbox.healthy():
            self.stop_operator()
            subprocess.run(
                [
                    str(build.binary(build.HELM)),
                    f"--kubeconfig={self.sandbox.kubeconfig}",
                    "uninstall",
                    RELEASE,
                    "-n",
                    OPERATOR_NAMESPACE,
                ],
                capture_output=True,
                timeout=120,
            )
        self.sandbox.down()


def _yaml_documents(text: str) -> list[dict[str, Any]]:
    import yaml

    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def run(action: str) -> int:
    demo = Demo()
    if action == "down":
        demo.down()
    else:
        demo.up()
    return 0
