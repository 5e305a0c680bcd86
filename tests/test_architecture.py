"""The house reads one way (docs/ARCHITECTURE.md): every import between the project's packages
follows an allowed arrow, parsed from the code itself, and the report side imports no torch.

    common                       the floor: imports none of the others
    imagen, drawbench            -> common
    bench                        -> imagen, drawbench, common
    human_eval                   -> drawbench, common
    reports                      -> common, and human_eval's export contract (contract, export: read-only)
    imagen_bench, selfcheck      -> anything (the shell and the suite's self-checks); nothing imports them
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "imagen", "drawbench", "bench", "human_eval", "reports", "imagen_bench", "selfcheck")
ALLOWED = {
    "common": set(),
    "imagen": {"common"},
    "drawbench": {"common"},
    "bench": {"imagen", "drawbench", "common"},
    "human_eval": {"drawbench", "common"},
    "reports": {"common", "human_eval.contract", "human_eval.export"},
    "imagen_bench": set(PACKAGES),
    "selfcheck": set(PACKAGES),
}


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file, at any depth (lazy imports count too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def allowed(source: str, module: str) -> bool:
    top = module.split(".")[0]
    if top not in PACKAGES or top == source:
        return True
    return any(module == a or module.startswith(a + ".") for a in ALLOWED[source])


def violations() -> list[str]:
    bad = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for line, module in imports(path):
                if not allowed(package, module):
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {module} ({package} may import: "
                               f"{', '.join(sorted(ALLOWED[package])) or 'none of the project packages'})")
    return bad


def test_every_import_follows_an_allowed_arrow():
    assert violations() == []


def test_the_checker_sees_a_wrong_arrow(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from bench.sweep import runner\n")
    assert imports(path) == [(2, "bench.sweep")] and not allowed("reports", "bench.sweep")
    assert allowed("reports", "human_eval.contract") and not allowed("reports", "human_eval.study")


def test_the_report_side_imports_no_torch():
    code = ("import sys, reports.build, reports.commands, human_eval.export, common.imagestore; "
            "print(sorted(m for m in ('torch', 'imagen', 'bench') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout.strip()
    assert out == "[]"


def test_help_groups_every_command_once():
    from imagen_bench.cli import COMMANDS, GROUPS, WIRING

    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(COMMANDS) and set(WIRING) <= set(COMMANDS)
