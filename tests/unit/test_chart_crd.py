"""The chart's CRD template: the generated CRD plus `helm.sh/resource-policy: keep`, kept fresh."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.crdgen import (
    CHART_ANNOTATIONS,
    SOURCES,
    CrdSource,
    render_chart_crd,
    render_chart_template,
    render_crd,
    render_crd_yaml,
)
from modeldeploy.crdgen import crd as crd_module
from modeldeploy.crdgen.__main__ import main
from tests.chart import CHART_DIR, ROOT, helm, of_kind, render, split_crd_template

CRD_FILE = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"


EVERY_KIND = pytest.mark.parametrize("source", SOURCES, ids=[s.names.kind for s in SOURCES])


@EVERY_KIND
def test_committed_chart_template_is_up_to_date(source: CrdSource) -> None:
    template = CHART_DIR / "templates" / source.chart_template_name
    assert template.read_text(encoding="utf-8") == render_chart_template(source), (
        f"{template.relative_to(ROOT)} is stale: run `python -m modeldeploy.crdgen` from the repository root"
    )


@EVERY_KIND
def test_template_is_the_crd_file_plus_the_keep_annotation_byte_for_byte(source: CrdSource) -> None:
    _, body, _ = split_crd_template((CHART_DIR / "templates" / source.chart_template_name).read_text(encoding="utf-8"))
    annotation = "  annotations:\n    helm.sh/resource-policy: keep\n"
    assert body.count(annotation) == 1
    assert body.replace(annotation, "", 1) == (ROOT / "crds" / source.file_name).read_text(encoding="utf-8")


def test_helm_renders_exactly_the_generated_crds_with_the_keep_annotation() -> None:
    crds = {crd["spec"]["names"]["kind"]: crd for crd in of_kind(render(), "CustomResourceDefinition")}
    assert set(crds) == {source.names.kind for source in SOURCES}
    for source in SOURCES:
        crd = crds[source.names.kind]
        assert crd == render_chart_crd(source)
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"} == CHART_ANNOTATIONS
        without = dict(crd, metadata={"name": crd["metadata"]["name"]})
        assert without == render_crd(source)


def test_crd_install_false_leaves_the_crd_out() -> None:
    assert not of_kind(render("--set", "crd.install=false"), "CustomResourceDefinition")
    result = helm(
        "template", "rel", str(CHART_DIR), "--show-only=templates/crd.yaml", "--set", "crd.install=false", check=False
    )
    assert result.returncode != 0
    assert "could not find template" in result.stderr


def test_the_crd_is_a_template_not_under_crds() -> None:
    """Helm installs crds/ once and never upgrades it; a template follows `helm upgrade`."""
    assert not (CHART_DIR / "crds").exists()


def test_go_template_braces_in_descriptions_are_escaped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = crd_module.render_crd

    def with_braces(source: CrdSource) -> dict[str, Any]:
        document = original(source)
        document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = "a {{ .Values.x }} literal"
        return document

    monkeypatch.setattr(crd_module, "render_crd", with_braces)
    template = crd_module.render_chart_template()
    assert 'a {{ "{{" }} .Values.x }} literal' in template
    chart = tmp_path / "modeldeploy"
    shutil.copytree(CHART_DIR, chart)
    (chart / "templates" / "crd.yaml").write_text(template)
    crds = of_kind(render(chart=chart), "CustomResourceDefinition")
    [crd] = [c for c in crds if c["spec"]["names"]["kind"] == "ModelDeployment"]
    assert crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] == "a {{ .Values.x }} literal"


# ---- the generator's command line covers both files --------------------------------------------


def test_check_without_arguments_checks_both_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["--check"]) == 0
    # a stale chart template alone fails the default check
    repo = tmp_path / "repo"
    (repo / "crds").mkdir(parents=True)
    (repo / "charts" / "modeldeploy" / "templates").mkdir(parents=True)
    (repo / "crds" / CRD_FILE.name).write_text(render_crd_yaml())
    stale = repo / "charts" / "modeldeploy" / "templates" / "crd.yaml"
    stale.write_text(
        render_chart_template().replace("helm.sh/resource-policy: keep", "helm.sh/resource-policy: delete")
    )
    monkeypatch.chdir(repo)
    assert main(["--check"]) == 1
    captured = capsys.readouterr()
    assert "+    helm.sh/resource-policy: keep" in captured.out
    assert "charts/modeldeploy/templates/crd.yaml is stale" in captured.err


def test_generate_without_arguments_writes_both_files_of_every_kind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    for source in SOURCES:
        assert (tmp_path / "crds" / source.file_name).read_text() == render_crd_yaml(source)
        template = tmp_path / "charts" / "modeldeploy" / "templates" / source.chart_template_name
        assert template.read_text() == render_chart_template(source)
    assert len(list((tmp_path / "crds").iterdir())) == len(SOURCES) == 3


def test_kind_chooses_what_output_writes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--kind", "ClusterModelRuntime", "--output", "c.yaml"]) == 0
    crd = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert (crd["spec"]["names"]["kind"], crd["spec"]["scope"]) == ("ClusterModelRuntime", "Cluster")


def test_naming_one_file_handles_only_that_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--chart-template", "t.yaml"]) == 0
    assert (tmp_path / "t.yaml").read_text() == render_chart_template()
    assert not (tmp_path / "crds").exists()
    assert main(["--chart-template", "-"]) == 0
    assert capsys.readouterr().out == render_chart_template()
    assert main(["--check", "--chart-template", "t.yaml"]) == 0
    assert yaml.safe_load(split_crd_template(render_chart_template())[1]) == render_chart_crd()
