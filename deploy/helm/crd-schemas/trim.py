"""Trim a CustomResourceDefinition to the JSON schema of its served versions.

    python trim.py CRD.yaml SOURCE > group_kind_version.json

The schemas the chart's custom resources are validated against (tests/deploy/test_chart.py)
are checked in, trimmed of their descriptions: no operator's controller runs here, so
these schemas are what stands between a typo in the chart and a resource the API server
would reject. SOURCE names the repository, commit and path the CRD was taken from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main() -> None:
    crd = yaml.safe_load(Path(sys.argv[1]).read_text())
    spec = crd["spec"]
    for version in spec["versions"]:
        if not version.get("served"):
            continue
        out = {"source": sys.argv[2], "apiVersion": f"{spec['group']}/{version['name']}",
               "kind": spec["names"]["kind"], "schema": strip(version["schema"]["openAPIV3Schema"])}
        name = f"{spec['group']}_{spec['names']['kind'].lower()}_{version['name']}.json"
        Path(name).write_text(json.dumps(out, indent=None, sort_keys=True, separators=(",", ":")) + "\n")
        print(name)


if __name__ == "__main__":
    main()
