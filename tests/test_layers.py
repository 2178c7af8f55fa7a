"""The house's import rules (docs/architecture.md, "Layers"), checked on the source: a package
imports only from its own layer or lower ones (resources < platform < apis < controllers <
machined; kosctl is part of apis), never a private name (``_x``) of another module, and a
package with a public surface only through its ``__init__`` (plus the listed public modules)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["resources", "platform", "apis", "controllers", "machined"]
SURFACES = ["resources.core", "controllers.runtime", "apis.client", "resources.pki", "machined.services",
            "machined.api"]
PUBLIC_MODULES = {"kos.controllers.runtime.testing", "kos.apis.client.health", "kos.apis.client.kubecheck",
                  # machined's service catalogue: one module per service, like kos.resources.<namespace>
                  "kos.machined.services.containerd", "kos.machined.services.etcd", "kos.machined.services.kubelet"}


def imports() -> list[tuple[str, str, str, list[str]]]:
    """(file, importing module, imported module, names) for every ``kos.`` import."""
    out = []
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            rel = path.relative_to(ROOT)
            me = "kos." + ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            for n in ast.walk(ast.parse(path.read_text(), str(rel))):
                if isinstance(n, ast.ImportFrom) and n.level == 0 and (n.module or "").startswith("kos."):
                    out.append((f"{rel}:{n.lineno}", me, n.module or "", [a.name for a in n.names]))
                elif isinstance(n, ast.Import):
                    out += [(f"{rel}:{n.lineno}", me, a.name, []) for a in n.names if a.name.startswith("kos.")]
    return out


def test_no_import_against_the_layers() -> None:
    bad = [f"{where}: {mod}" for where, me, mod, _ in imports()
           if LAYERS.index(mod.split(".")[1]) > LAYERS.index(me.split(".")[1])]
    assert bad == [], "imports against resources < platform < apis < controllers < machined:\n" + "\n".join(bad)


def test_no_private_name_crosses_modules() -> None:
    bad = [f"{where}: {mod}.{name}" for where, me, mod, names in imports() for name in names
           if name.startswith("_") and not name.startswith("__") and mod != me]
    assert bad == [], "private names imported from another module:\n" + "\n".join(bad)


def test_surfaces_are_imported_through_their_init() -> None:
    bad = [f"{where}: {mod}" for where, me, mod, _ in imports() for s in SURFACES
           if mod.startswith(f"kos.{s}.") and mod not in PUBLIC_MODULES and not me.startswith(f"kos.{s}")]
    assert bad == [], "import these from the package's __init__ instead:\n" + "\n".join(bad)
