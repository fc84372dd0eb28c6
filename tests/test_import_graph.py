"""No import cycle among caredask's modules (module-level imports; imports inside functions
are the lazy way out of a cycle and are not counted)."""

from __future__ import annotations

import ast
from pathlib import Path

import caredask

PACKAGE = Path(caredask.__file__).parent


def _modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is package) of every module below the package folder ``root``."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _targets(
    name: str, is_pkg: bool, node: ast.Import | ast.ImportFrom, known: set[str]
) -> set[str]:
    """The modules of ``known`` an import statement in module ``name`` loads by name."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names} & known
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    if node.level:
        base = base[: len(base) - node.level + 1]
        target = ".".join([*base, *([node.module] if node.module else [])])
    else:
        target = node.module or ""
    return {
        f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names
    } & known


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: top level, and inside top-level if/try
    (``if TYPE_CHECKING:`` blocks excluded); not those inside functions or classes."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            todo.extend([*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            todo.extend([*node.body, *node.orelse, *node.finalbody])
            todo.extend(s for h in node.handlers for s in h.body)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> modules it imports at module level, within the package folder ``root``."""
    modules = _modules(root)
    known = set(modules)
    graph = {}
    for name, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps = set().union(*(_targets(name, is_pkg, n, known) for n in _module_level_imports(tree)))
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None`` if the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        path.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return [*path[path.index(v) :], v]
            if v not in state and (cycle := visit(v)):
                return cycle
        path.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (cycle := visit(u)):
            return cycle
    return None


def test_caredask_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert {"caredask.cli.main", "caredask.transforms.protocol"} <= set(graph)
    assert "caredask.cli.dataset_cmd" in graph["caredask.cli.patches_cmd"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_check_finds_a_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("from .sub.b import g\n\ndef f():\n    from . import c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text(
        "try:\n    from ..c import h\nexcept ImportError:\n    pass\n"
    )
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b"}  # the import inside f is lazy, not counted
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (pkg / "c.py").write_text("def h():\n    import pkg.a\n")
    assert find_cycle(import_graph(pkg)) is None
