"""Writes the architecture graphs of docs/architecture.md: ``layers.dot`` (the package layers and
how many imports run between them, from the source) and ``controllers.dot`` (every
controller of a control-plane node and the resource types it reads and writes, from the
controller runtime's dependency graph). With Graphviz (``apt-get install graphviz``) each
is rendered to SVG as well. Run from the repository root: ``python3 docs/graphs/generate.py``.
"""

from __future__ import annotations

import ast
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "graphs"
LAYERS = ["resources", "platform", "apis", "controllers", "machined"]
HOLDS = {
    "resources": "COSI core, resource catalogue,\\nmachine config, PKI",
    "platform": "where a machine runs;\\nkernel, disk, image adapters",
    "apis": "protocol, wire, client, State/Machine\\nservers, RBAC, kosctl",
    "controllers": "controller runtime,\\none subpackage per domain",
    "machined": "PID 1, sequencer, supervisor + services,\\nnode assembly, domain servicers (api/)",
}


def layer_edges() -> collections.Counter[tuple[str, str]]:
    edges: collections.Counter[tuple[str, str]] = collections.Counter()
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            for n in ast.walk(ast.parse(path.read_text())):
                mods = [n.module] if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module else \
                    [a.name for a in n.names] if isinstance(n, ast.Import) else []
                for m in mods:
                    parts = m.split(".")
                    if parts[0] == "kos" and len(parts) > 1 and parts[1] in LAYERS and parts[1] != layer:
                        edges[(layer, parts[1])] += 1
    return edges


def layers_dot() -> str:
    lines = ["digraph layers {", "  rankdir=BT;", "  node [shape=box, style=rounded, fontname=Helvetica];",
             "  edge [fontname=Helvetica, fontsize=10];"]
    for layer in LAYERS:
        lines.append(f'  {layer} [label="kos.{layer}\\n{HOLDS[layer]}"];')
    for (a, b), count in sorted(layer_edges().items()):
        against = LAYERS.index(b) > LAYERS.index(a)
        lines.append(f'  {a} -> {b} [label="{count}"{", color=red" if against else ""}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def controllers_dot() -> str:
    from kos.controllers.config.assembly import config_controllers
    from kos.controllers.config.manager import ConfigManager
    from kos.controllers.etcd.marker import EtcdPaths
    from kos.controllers.runtime import Runtime
    from kos.machined import assembly
    from kos.resources.core import InMemoryState

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ctx = assembly.AssemblyContext(root=str(root), control_plane=True, state_dir=root / "state", domain_params={
            "etcd": {"paths": EtcdPaths(root)},
            "network": {"netns": None, "etc_dir": str(root / "etc"), "manage_hostname": False, "cmdline": "",
                        "machine_id": "0" * 32},
        })
        controllers, missing = assembly.assemble_controllers(ctx, tuple(d for d in assembly.DOMAINS if d != "config"))
        if missing:
            raise SystemExit(f"domains that did not assemble: {missing}")
        runtime = Runtime(InMemoryState())
        for c in [*config_controllers(config_manager=ConfigManager(root / "state")), *controllers]:
            runtime.register(c)
        return runtime.dependency_dot()


def main() -> None:
    for name, text in (("layers", layers_dot()), ("controllers", controllers_dot())):
        (OUT / f"{name}.dot").write_text(text)
        if shutil.which("dot"):
            subprocess.run(["dot", "-Tsvg", "-o", str(OUT / f"{name}.svg"), str(OUT / f"{name}.dot")], check=True)
        else:
            print(f"{name}.dot written; Graphviz (dot) is not installed: no SVG", file=sys.stderr)


if __name__ == "__main__":
    main()
