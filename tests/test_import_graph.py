"""The package's import structure: no import loop, and no shared layer importing a higher one.

Layers, bottom up: util, models, data, features, training, lite, export, reporting,
experiments, papers (bench, cli and demo sit on top). A shared layer (everything below
experiments) never imports experiments, papers, reporting or export, except that export may
use training and reporting may use export's constants through training.rundir. Read from the
source's own ``import`` statements (top-level and inside functions), nothing is executed.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ser_tf"
SHARED = ("util", "models", "data", "features", "training", "lite", "align", "tuning")
HIGHER = ("experiments", "papers", "reporting", "export", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
                targets.update(n if n in modules else node.module for n in names)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_shared_layers_import_no_higher_layer():
    wrong = sorted(f"{a} -> {b}" for a, targets in import_graph().items() for b in targets
                   if layer(a) in SHARED and layer(b) in HIGHER)
    assert wrong == []


def test_shared_layers_name_no_paper_package():
    wrong = sorted(f"{a} -> {b}" for a, targets in import_graph().items() for b in targets
                   if layer(a) not in ("papers", "experiments", "bench", "cli", "")
                   and layer(b) == "papers")
    assert wrong == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop between modules (package __init__ files re-exporting excluded)."""
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_loop():
    graph = import_graph()
    # A package's __init__ handing on its SPEC is not a loop of code.
    packages = {m for m in graph if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    graph = {a: {b for b in t if b not in packages} for a, t in graph.items() if a not in packages}
    assert find_cycle(graph) is None


def test_the_checker_sees_a_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
