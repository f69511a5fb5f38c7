"""Copy health.lua into the argocd-cm examples: docs/examples/argocd-cm.yaml and docs/gitops.md.

Run after editing health.lua: `python integrations/argocd/inline.py`. In each file the block
scalar under `resource.customizations.health.modeldeploy.io_ModelDeployment: |` is replaced by
the script, indented four spaces. tests/unit/test_argocd_health.py fails while a copy differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KEY_LINE = "  resource.customizations.health.modeldeploy.io_ModelDeployment: |\n"
TARGETS = (ROOT / "docs" / "examples" / "argocd-cm.yaml", ROOT / "docs" / "gitops.md")


def indented(lua: str) -> str:
    return "".join(("    " + line) if line.strip() else "\n" for line in lua.splitlines(keepends=True))


def inline(text: str, lua: str) -> str:
    """`text` with the block scalar after KEY_LINE replaced by `lua`."""
    start = text.index(KEY_LINE) + len(KEY_LINE)
    end = start
    lines = text[start:].splitlines(keepends=True)
    for line in lines:  # the block runs while lines are blank or indented deeper than the key
        if line.strip() and not line.startswith("    "):
            break
        end += len(line)
    return text[:start] + indented(lua) + text[end:]


def main() -> int:
    lua = (HERE / "health.lua").read_text()
    for target in TARGETS:
        text = target.read_text()
        updated = inline(text, lua)
        if updated != text:
            target.write_text(updated)
            print(f"updated {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
