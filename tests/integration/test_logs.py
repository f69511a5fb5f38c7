"""The operator's log as an admin reads it: JSON lines when asked, one line per write, no noise."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.conftest import Kubectl, model_deployment, start_operator, stop_operator

pytestmark = pytest.mark.integration  # its own operator, logging JSON


def test_json_logs_one_line_per_write_and_no_warning_for_a_quick_delete(
    sandbox: Sandbox, crd: Path, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "operator.log"
    operator = start_operator(
        sandbox.kubeconfig, log, {"MODELDEPLOY_LOG_FORMAT": "json", "MODELDEPLOY_NAMESPACES": namespace}
    )
    try:
        kubectl("apply", "-f", "-", input=json.dumps(model_deployment("kept", replicas=1)))
        kubectl("wait", "--for=condition=Ready", "md/kept", "--timeout=60s")
        for i in range(3):  # deleted right after creation, before or while it is reconciled
            kubectl("apply", "-f", "-", input=json.dumps(model_deployment(f"brief-{i}", replicas=1)))
            kubectl("delete", "md", f"brief-{i}", "--wait=false")
        time.sleep(3)
    finally:
        stop_operator(operator)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]  # every line parses
    assert records
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    ours = [r for r in records if r["logger"].startswith("modeldeploy")]
    writes = [r["message"] for r in ours if f"{namespace}/kept: applied" in r["message"]]
    print(f"{len(records)} JSON records; writes logged for 'kept': {writes}")
    assert len(writes) == 1, writes
    assert "Deployment/kept" in writes[0]
    assert "new generation 1" in writes[0]
    warnings = [r for r in records if r["level"] in ("WARNING", "ERROR", "CRITICAL")]
    assert not warnings, warnings
    assert not [r for r in records if "healthz" in r["message"]]  # start_operator polled it: no access log
