"""`modeldeploy rollout status|history|promote|abort|retry NAME`: a ModelDeployment's rollout, as a person drives it.

Also installed as `kubectl-modeldeploy`, so `kubectl modeldeploy rollout status iris` works (kubectl
runs any `kubectl-<name>` on the PATH as a plugin). Everything goes through the user's own
kubeconfig and rights. `status` and `history` only read (`get`). `promote`, `abort` and `retry`
write one annotation, `modeldeploy.io/rollout-action: <verb>/<token>`, by server-side apply under
a field manager of their own (`patch` on modeldeployments): never the status, which is the
operator's alone (a client writing it would race the operator and need rights on the status
subresource), and never the spec (a GitOps tool would revert it, and it would begin a new
generation). The operator carries out each token once and records it in status.rollout.action.
The texts are pure functions of the object, so they are table-tested without a cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from modeldeploy.api.names import ROLLOUT_ACTION_ANNOTATION

Obj = Mapping[str, Any]
DONE, NOT_DONE = 0, 1
POLL_SECONDS = 1.0


def _conditions(md: Obj) -> dict[str, Obj]:
    return {c.get("type", ""): c for c in (md.get("status") or {}).get("conditions") or []}


def rollout_status(md: Obj) -> tuple[int, str, bool]:
    """(exit code, what to say, whether waiting longer can change it) for one read of the object.

    Done means the operator observed the current generation and says Ready; a Stalled object
    will not get there by waiting, so `--wait` stops on it with exit code 1, as on a timeout.
    """
    metadata, status = md.get("metadata") or {}, md.get("status") or {}
    name, generation = metadata.get("name", "?"), metadata.get("generation")
    if status.get("observedGeneration") != generation:
        return (
            NOT_DONE,
            f"waiting for the operator to observe generation {generation} of modeldeployment {name!r}",
            True,
        )
    conditions = _conditions(md)
    stalled = conditions.get("Stalled") or {}
    if stalled.get("status") == "True":
        return (
            NOT_DONE,
            f"modeldeployment {name!r} is stalled ({stalled.get('reason')}): {stalled.get('message')}",
            False,
        )
    ready = conditions.get("Ready") or {}
    revision = ((status.get("history") or [{}])[0]).get("revision")
    on = f"revision {revision}, " if revision is not None else ""
    version = ((md.get("spec") or {}).get("model") or {}).get("version")
    if ready.get("status") == "True":
        replicas = f"{status.get('readyReplicas', 0)}/{status.get('replicas', 0)} replicas"
        return DONE, f"modeldeployment {name!r} successfully rolled out: {on}version {version} on {replicas}", False
    reconciling = conditions.get("Reconciling") or {}
    why = reconciling.get("message") or ready.get("message") or "waiting for the operator"
    return NOT_DONE, f"waiting for modeldeployment {name!r} ({on}version {version}): {why}", True


HISTORY_COLUMNS = ("REVISION", "VERSION", "OUTCOME", "RUNTIME", "IMAGE", "STARTED", "SERVED", "FINISHED", "REASON")
_HISTORY_KEYS = ("revision", "version", "outcome", "runtime", "image", "started", "served", "finished", "reason")


def history_table(md: Obj) -> str:
    """status.history as a table, newest first, the way `kubectl rollout history` lists revisions."""
    entries: Sequence[Obj] = (md.get("status") or {}).get("history") or []
    if not entries:
        name = (md.get("metadata") or {}).get("name", "?")
        return f"modeldeployment {name!r} has no revisions yet (the operator has not rolled it out)"
    rows: list[tuple[str, ...]] = [HISTORY_COLUMNS]
    rows += [tuple(str(entry.get(key) or "-") for key in _HISTORY_KEYS) for entry in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HISTORY_COLUMNS) - 1)]
    return "\n".join(
        "   ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    )


ACTION_FIELD_MANAGER = "modeldeploy-rollout-cli"
# what each verb needs the rollout to be doing
_ACTION_PHASES = {"promote": ("Progressing",), "abort": ("Progressing",), "retry": ("RolledBack",)}


def action_refusal(md: Obj, verb: str) -> str | None:
    """Why `verb` cannot be asked of this object now, or None when it can."""
    name = (md.get("metadata") or {}).get("name", "?")
    rollout = (md.get("status") or {}).get("rollout") or {}
    phase = rollout.get("phase")
    if verb == "promote" and phase == "Progressing" and not rollout.get("steps"):
        return f"cannot promote modeldeployment {name!r}: a rolling update has no steps to skip; abort it or wait"
    if phase in _ACTION_PHASES[verb]:
        return None
    now = f"its rollout is {phase}" if phase else "it has no canary or watched rollout"
    wanted = " or ".join(_ACTION_PHASES[verb])
    return f"cannot {verb} modeldeployment {name!r}: {now}; {verb} needs a rollout that is {wanted}"


def action_patch(md: Obj, verb: str, token: str) -> dict[str, Any]:
    """The server-side apply body that asks the operator for `verb`."""
    metadata = md.get("metadata") or {}
    return {
        "apiVersion": md.get("apiVersion", "modeldeploy.io/v1alpha1"),
        "kind": "ModelDeployment",
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "annotations": {ROLLOUT_ACTION_ANNOTATION: f"{verb}/{token}"},
        },
    }


def add_rollout_commands(commands: Any) -> None:
    """`rollout status|history|promote|abort|retry`, on the top-level command line's subparsers."""
    rollout = commands.add_parser("rollout", help="a ModelDeployment's rollout: status, history, promote, abort, retry")
    actions = rollout.add_subparsers(dest="action", required=True)
    for action, text in (
        ("status", "say whether the latest spec is rolled out (exit 0) or not yet (exit 1)"),
        ("history", "list the revisions that served, newest first (status.history)"),
        ("promote", "promote a running canary now, skipping its remaining steps and checks"),
        ("abort", "roll a running canary back now; the stable keeps serving"),
        ("retry", "run a rolled-back version's canary (or watched rollout) again, from its first step"),
    ):
        parser = actions.add_parser(action, help=text, description=text)
        parser.add_argument("name", help="the ModelDeployment")
        parser.add_argument("--namespace", "-n", help="its namespace (default: the kubeconfig context's)")
        parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
        parser.add_argument("--context", help="kubeconfig context (default: the current one)")
        if action == "status":
            parser.add_argument("--wait", "-w", action="store_true", help="wait until rolled out, or stalled")
            parser.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits (default 300)")
        parser.set_defaults(handler=run_rollout)


def run_rollout(args: argparse.Namespace) -> int:
    return asyncio.run(_rollout(args))


async def _rollout(args: argparse.Namespace) -> int:
    from modeldeploy import kubeapi

    configuration = kubeapi.load_configuration(args.kubeconfig, args.context)
    namespace = args.namespace or _context_namespace(args.kubeconfig, args.context)
    api = kubeapi.KubeClient(configuration)
    try:
        deadline = time.monotonic() + (args.timeout if getattr(args, "wait", False) else 0)
        while True:
            md = await api.get(kubeapi.MODEL_DEPLOYMENT, namespace, args.name)
            if md is None:
                raise RuntimeError(f'modeldeployment "{args.name}" not found in namespace "{namespace}"')
            if args.action == "history":
                print(history_table(md))
                return DONE
            if args.action in _ACTION_PHASES:
                return await _act(api, md, args.action)
            code, text, worth_waiting = rollout_status(md)
            if code == DONE or not worth_waiting or time.monotonic() >= deadline:
                print(text)
                if code != DONE and getattr(args, "wait", False) and worth_waiting:
                    print(f"timed out after {args.timeout:.0f}s")
                return code
            await asyncio.sleep(POLL_SECONDS)
    except kubeapi.ApiError as error:
        raise RuntimeError(f"{error.status} {error.message}") from None
    finally:
        await api.aclose()


async def _act(api: Any, md: Obj, verb: str) -> int:
    refusal = action_refusal(md, verb)
    if refusal is not None:
        print(refusal)
        return NOT_DONE
    await api.apply(action_patch(md, verb, str(time.time_ns())), field_manager=ACTION_FIELD_MANAGER)
    name = md["metadata"]["name"]
    print(f"modeldeployment {name!r}: {verb} requested; the operator carries it out at its next reconcile")
    return DONE


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig context, as kubectl takes it; `default` when it names none."""
    from kubernetes import config as k8s_config

    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (k8s_config.ConfigException, OSError):
        return "default"
    chosen = next((c for c in contexts if c.get("name") == context), current) if context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")
