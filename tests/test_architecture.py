"""The layering of src/transferkit, enforced: imports point down, never in a loop, and no
package reaches into another's private modules.

Every import counts, including the ones deferred into functions: a deferred import hides a
cycle from Python, not from a reader. docs/architecture.md draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "transferkit"

# Bottom to top. A unit (sub-package or top-level module of transferkit) may import units of
# lower layers only; units of one layer are peers and may not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("utils",),
    ("spec",),
    ("data", "backbones"),
    ("runtime",),
    ("features",),
    ("heads",),
    ("train", "search", "autoencoders", "explain", "dense"),
    ("text",),
    ("audio",),
    ("service", "distributed", "loading", "lab"),
    ("cli",),
]
# The package's own __init__ (lazy attribute access) and __main__ (runs the CLI) sit on top.
ENTRY_POINTS = {"__init__", "__main__"}


def unit_of(module: str) -> str | None:
    """``transferkit.search.image_index`` -> ``search``; None outside the package."""
    parts = module.split(".")
    if parts[0] != "transferkit":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) for every import statement in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [alias.name for alias in node.names]
            found.append((node.lineno, base, names))
    return found


def import_edges(root: Path) -> list[tuple[str, str, str, str]]:
    """(importing unit, imported unit, imported module, 'file:line') across units."""
    edges = []
    for path in sorted(root.rglob("*.py")):
        source_unit = unit_of(module_name(path, root)) or ""
        if source_unit == "__init__" and path.parent != root:
            continue
        for line, module, names in imported_modules(path, root):
            targets = [module]
            if module == "transferkit":  # from transferkit import search
                targets = [f"transferkit.{name}" for name in names]
            for target in targets:
                target_unit = unit_of(target)
                if target_unit and target_unit != source_unit:
                    edges.append((source_unit, target_unit, target,
                                  f"{path.relative_to(root.parent)}:{line}"))
    return edges


def cycles(edges: list[tuple[str, str, str, str]]) -> list[list[str]]:
    """Strongly connected groups of more than one unit (Tarjan), each a loop of imports."""
    graph: dict[str, set[str]] = {}
    for src, dst, _, _ in edges:
        graph.setdefault(src, set()).add(dst)
        graph.setdefault(dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def private_reaches(edges: list[tuple[str, str, str, str]]) -> list[str]:
    """Imports of another unit's private module (a path part starting with ``_``)."""
    return [f"{where}: {src} imports {module}" for src, _, module, where in edges
            if any(part.startswith("_") and part not in ("__init__", "__main__")
                   for part in module.split(".")[2:])]


def layer_violations(edges: list[tuple[str, str, str, str]],
                     layers: list[tuple[str, ...]]) -> list[str]:
    rank = {unit: i for i, layer in enumerate(layers) for unit in layer}
    bad = []
    for src, dst, module, where in edges:
        if src in ENTRY_POINTS:
            continue
        if src not in rank or dst not in rank:
            missing = src if src not in rank else dst
            bad.append(f"{where}: {missing!r} is in no layer; add it to LAYERS and "
                       f"docs/architecture.md")
        elif rank[dst] >= rank[src]:
            kind = "a peer" if rank[dst] == rank[src] else "a higher layer"
            bad.append(f"{where}: {src} imports {module}, {kind}")
    return bad


def units(root: Path) -> set[str]:
    found = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return found | {p.stem for p in root.glob("*.py")} - ENTRY_POINTS


# -- the rules on the real package ------------------------------------------------------------

@pytest.fixture(scope="module")
def edges():
    return import_edges(PACKAGE_ROOT)


def test_every_unit_has_a_layer():
    placed = {unit for layer in LAYERS for unit in layer}
    assert units(PACKAGE_ROOT) == placed


def test_imports_point_down(edges):
    assert layer_violations(edges, LAYERS) == []


def test_no_import_cycle_between_packages(edges):
    assert cycles(edges) == []


def test_no_package_imports_another_ones_private_modules(edges):
    assert private_reaches(edges) == []


def test_docs_picture_names_every_layer():
    text = (PACKAGE_ROOT.parents[1] / "docs" / "architecture.md").read_text()
    missing = [unit for layer in LAYERS for unit in layer if f"`{unit}" not in text]
    assert missing == []


# -- the checker itself finds what it should ----------------------------------------------------

def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "transferkit"
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


def test_checker_reports_cycles_upward_and_private_imports(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "utils/__init__.py": "from transferkit.backbones import create\n",
        "backbones/__init__.py": "def create():\n    from ..utils import x\n",
        "backbones/_weights.py": "",
        "features/__init__.py": "from transferkit.backbones._weights import load\n"
                                "from transferkit import errors\n",
    })
    edges = import_edges(root)
    assert cycles(edges) == [["backbones", "utils"]]
    layers = [("errors",), ("utils",), ("backbones",), ("features",)]
    assert layer_violations(edges, layers) == [
        "transferkit/utils/__init__.py:1: utils imports transferkit.backbones, a higher layer"]
    assert private_reaches(edges) == [
        "transferkit/features/__init__.py:1: features imports transferkit.backbones._weights"]
    assert units(root) == {"errors", "utils", "backbones", "features"}
