"""`python -m modeldeploy.crdgen [--output PATH|-] [--chart-template PATH|-] [--check]`, run from the repository root.

With neither `--output` nor `--chart-template`, both default files are written (or checked):
the CRD under crds/ and its copy in the Helm chart. Naming one of them handles only that one.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from modeldeploy.crdgen.crd import render_chart_template, render_crd_yaml

DEFAULT_OUTPUT = Path("crds/modeldeploy.io_modeldeployments.yaml")
DEFAULT_CHART_TEMPLATE = Path("charts/modeldeploy/templates/crd.yaml")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy.crdgen", description="Generate the ModelDeployment CRD from modeldeploy.api."
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

    targets: list[tuple[str, Callable[[], str]]] = []
    if args.output is None and args.chart_template is None:
        targets = [(str(DEFAULT_OUTPUT), render_crd_yaml), (str(DEFAULT_CHART_TEMPLATE), render_chart_template)]
    else:
        if args.output is not None:
            targets.append((args.output, render_crd_yaml))
        if args.chart_template is not None:
            targets.append((args.chart_template, render_chart_template))

    status = 0
    for target, render in targets:
        status |= _handle(target, render(), check=args.check)
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
