"""The package's layers: the core never imports its uses (checked on the source, by AST)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dtd_keras"

# the uses of the library: nothing in the core may import them
USES = {"cli", "demo", "demo_folder", "datasets", "evaluate", "callbacks", "export",
        "relevance_model", "image", "presets", "concepts", "reporting"}
# the core: the engine, rules, layers, analyzers and what they share
CORE = {"engine", "rules", "layers", "analyzers", "errors", "explanation", "reading"}


def _imports(path: Path) -> set[str]:
    """The dtd_keras top-level names a module imports (relative or absolute)."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(module[:len(module) - node.level])
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts + [a.name] for a in node.names] if not node.module else [parts]
            else:
                names = [(node.module or "").split(".")]
            for parts in names:
                if parts[0] == "dtd_keras" and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "dtd_keras" and len(parts) > 1:
                    found.add(parts[1])
    return found


def _top(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def test_the_helper_sees_imports(tmp_path):
    assert "engine" in _imports(PACKAGE / "rules" / "linear.py")
    assert "reading" in _imports(PACKAGE / "datasets" / "sources.py")


def test_the_core_never_imports_its_uses():
    offending = []
    for path in PACKAGE.rglob("*.py"):
        if _top(path) in CORE:
            bad = _imports(path) & USES
            if bad:
                offending.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    # Analyzer.export is the one sanctioned door from the core to a use (export never
    # imports the analyzers back)
    offending = [o for o in offending if o != "analyzers/base.py imports ['export']"]
    assert not offending, offending


def test_nothing_but_the_command_line_imports_it():
    offending = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if _top(p) not in {"cli", "__main__"} and "cli" in _imports(p)]
    assert not offending, offending


def test_export_does_not_import_the_analyzers():
    assert "analyzers" not in _imports(PACKAGE / "export.py")
