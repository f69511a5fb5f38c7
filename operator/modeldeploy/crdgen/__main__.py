"""`python -m modeldeploy.crdgen [--kind KIND] [--output PATH|-] [--chart-template PATH|-] [--check]`.

Run from the repository root. With neither `--output` nor `--chart-template`, every kind's two
files are written (or checked): its CRD under crds/ and its copy in the Helm chart. Naming one
of them handles only that file, for `--kind` (ModelDeployment unless given).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from modeldeploy.crdgen.crd import SOURCES, CrdSource, render_chart_template, render_crd_yaml

CRD_DIR = Path("crds")
CHART_TEMPLATES = Path("charts/modeldeploy/templates")
DEFAULT_OUTPUT = CRD_DIR / SOURCES[0].file_name
DEFAULT_CHART_TEMPLATE = CHART_TEMPLATES / SOURCES[0].chart_template_name
_BY_KIND = {source.names.kind: source for source in SOURCES}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy.crdgen", description="Generate the CRDs from modeldeploy.api."
    )
    parser.add_argument(
        "--kind",
        choices=sorted(_BY_KIND),
        default=SOURCES[0].names.kind,
        help="the kind --output and --chart-template are for",
    )
    parser.add_argument(
        "--output",
        "-o",
        help=f"CRD file to write, or - for stdout (default: {DEFAULT_OUTPUT}, relative to the current directory)",
    )
    parser.add_argument(
        "--chart-template",
        help=f"Helm chart CRD template to write, or - for stdout (default: {DEFAULT_CHART_TEMPLATE})",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 with a diff if a file is not up to date"
    )
    args = parser.parse_args(argv)

    targets: list[tuple[str, CrdSource, Callable[[CrdSource], str]]] = []
    if args.output is None and args.chart_template is None:
        for source in SOURCES:
            targets.append((str(CRD_DIR / source.file_name), source, render_crd_yaml))
            targets.append((str(CHART_TEMPLATES / source.chart_template_name), source, render_chart_template))
    else:
        source = _BY_KIND[args.kind]
        if args.output is not None:
            targets.append((args.output, source, render_crd_yaml))
        if args.chart_template is not None:
            targets.append((args.chart_template, source, render_chart_template))

    status = 0
    for target, source, render in targets:
        status |= _handle(target, render(source), check=args.check)
    return status


def _handle(target: str, rendered: str, *, check: bool) -> int:
    if target == "-":
        sys.stdout.write(rendered)
        return 0
    output = Path(target)
    if check:
        return _check(output, rendered)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(rendered, encoding="utf-8")
    print(f"wrote {output} ({len(rendered.encode())} bytes)", file=sys.stderr)
    return 0


def _check(output: Path, rendered: str) -> int:
    current = output.read_text(encoding="utf-8") if output.exists() else ""
    if current == rendered:
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        rendered.splitlines(keepends=True),
        fromfile=f"{output} (committed)",
        tofile=f"{output} (generated)",
    )
    sys.stdout.writelines(diff)
    print(f"{output} is stale: run `python -m modeldeploy.crdgen`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
