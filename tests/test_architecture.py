"""The house reads one way (docs/ARCHITECTURE.md): every import between the project's packages
follows an allowed arrow, parsed from the code itself, and the report side imports no torch.

    common                       the floor: imports none of the others
    imagen, drawbench            -> common
    bench                        -> imagen, drawbench, common
    human_eval                   -> drawbench, common
    reports                      -> common, drawbench, and human_eval's read side (contract, export)
    imagen_bench, selfcheck      -> anything (the shell and the suite's self-checks); nothing imports them

Checked three ways: each import a file writes (lazy ones too) names an allowed module; the import
closure of every module (all it brings with it, transitively) stays inside the packages its
package may depend on, so an allowed name cannot smuggle in a forbidden one; and the imports wired
by strings (the command table, WIRING, the metric registry, the trials table) resolve to modules
that exist and are resolved the same way. Inside packages, rules where drift starts (RULES_INSIDE).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "imagen", "drawbench", "bench", "human_eval", "reports", "imagen_bench", "selfcheck")
ALLOWED = {
    "common": set(),
    "imagen": {"common"},
    "drawbench": {"common"},
    "bench": {"imagen", "drawbench", "common"},
    "human_eval": {"drawbench", "common"},
    "reports": {"common", "drawbench", "human_eval.contract", "human_eval.export"},
    "imagen_bench": set(PACKAGES),
    "selfcheck": set(PACKAGES),
}
# module -> modules its closure must not reach (prefixes), and why
RULES_INSIDE = {
    "human_eval.contract": (
        {
            "common",
            "drawbench",
            "imagen",
            "bench",
            "reports",
            "human_eval.store",
            "human_eval.study",
            "human_eval.export",
            "human_eval.server",
            "human_eval.app",
        },
        "the ratings contract is a leaf: pandas and human_eval.protocols",
    ),
    "imagen.unet": ({"imagen.pipeline", "imagen.train"}, "the network never imports what drives it"),
    "imagen.samplers": ({"imagen.pipeline", "imagen.train"}, "samplers are plain functions of a denoiser"),
    "imagen.schedule": ({"imagen.pipeline", "imagen.train"}, "a schedule is a function of t"),
    "bench.metrics": ({"bench.sweep"}, "metrics score images; the sweep drives them, never the reverse"),
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
                    bad.append(
                        f"{path.relative_to(REPO)}:{line} imports {module} ({package} may import: "
                        f"{', '.join(sorted(ALLOWED[package])) or 'none of the project packages'})"
                    )
    return bad


# -- closures --------------------------------------------------------------------------------------


@cache
def modules() -> dict[str, Path]:
    """Every project module by dotted name (packages by their __init__)."""
    out = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _module_of(name: str) -> str | None:
    """The project module a dotted import name lands in (the longest existing prefix)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules():
        parts = parts[:-1]
    return ".".join(parts) or None


@cache
def direct(module: str) -> frozenset[str]:
    """The project modules one module imports, relative and lazy imports included, plus its parents
    (importing a.b.c runs a/__init__ and a/b/__init__)."""
    path = modules()[module]
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names += [base] + [f"{base}.{a.name}" for a in node.names]  # `from pkg import module` imports the module
    return frozenset(m for m in map(_module_of, names) if m and m != module)


@cache
def closure(module: str) -> frozenset[str]:
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += direct(m)
    return frozenset(seen)


def closure_violations() -> list[str]:
    """A module whose closure reaches a package its own package may not depend on, with the path."""
    bad = []
    for module in sorted(modules()):
        package = module.split(".")[0]
        may = {package} | {a.split(".")[0] for a in ALLOWED[package]}
        for other in sorted(closure(module)):
            if other.split(".")[0] not in may:
                bad.append(
                    f"{module} brings in {other} ({package} may depend on: {', '.join(sorted(may - {package}))})"
                )
                break
    for rule, (forbidden, why) in RULES_INSIDE.items():
        for module in [m for m in modules() if m == rule or m.startswith(rule + ".")]:
            reached = sorted(o for o in closure(module) if any(o == f or o.startswith(f + ".") for f in forbidden))
            if reached:
                bad.append(f"{module} brings in {', '.join(reached)} ({why})")
    return bad


def string_wired() -> list[tuple[str, str]]:
    """(where, module) of every import wired by a string: commands, WIRING, metrics, trials."""
    from bench.metrics import REGISTRY
    from imagen_bench.cli import COMMANDS, WIRING
    from selfcheck.trials.commands import TRIALS

    out = [(f"imagen_bench.cli COMMANDS[{k!r}]", m) for k, (m, _) in COMMANDS.items()]
    out += [
        (f"imagen_bench.cli WIRING[{k!r}][{a!r}]", t.partition(":")[0])
        for k, v in WIRING.items()
        for a, t in v.items()
    ]
    # toy metrics that tests register for themselves (module tests.*) are the tests' own wiring
    out += [(f"bench.metrics REGISTRY[{k!r}]", m) for k, (m, _) in REGISTRY.items() if not m.startswith("tests.")]
    out += [(f"selfcheck.trials TRIALS[{k!r}]", m) for k, (m, _) in TRIALS.items()]
    return out


def test_every_import_follows_an_allowed_arrow():
    assert violations() == []


def test_every_closure_stays_inside_its_packages_arrows():
    assert closure_violations() == []


def test_every_string_wired_import_names_a_module_and_follows_an_arrow():
    """A string is an import the AST never sees: each must name an existing project module, and a
    registry inside a package may only name modules its package may import."""
    for where, module in string_wired():
        assert module in modules(), f"{where} names {module!r}, which is no module of the project"
        owner = where.split(" ")[0].split(".")[0]
        assert allowed(owner, module), f"{where} wires {module} into {owner}, which may not import it"


def test_the_closure_checker_sees_a_smuggled_module(tmp_path, monkeypatch):
    """An allowed name that imports a forbidden one: reports -> human_eval.contract -> bench."""
    import test_architecture as arch

    fake = dict(modules())
    fake["human_eval.contract"] = tmp_path / "contract.py"
    (tmp_path / "contract.py").write_text("def f():\n    from bench.sweep import runner\n")
    monkeypatch.setattr(arch, "modules", lambda: fake)
    for f in (arch.direct, arch.closure):
        f.cache_clear()
    try:
        assert "bench.sweep.runner" in arch.closure("reports.answers")
        assert any(v.startswith("reports.answers brings in bench") for v in arch.closure_violations())
    finally:
        for f in (arch.direct, arch.closure):
            f.cache_clear()


def test_the_checker_sees_a_wrong_arrow(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from bench.sweep import runner\n")
    assert imports(path) == [(2, "bench.sweep")] and not allowed("reports", "bench.sweep")
    assert allowed("reports", "human_eval.contract") and not allowed("reports", "human_eval.study")


def test_the_report_side_imports_no_torch():
    code = (
        "import sys, reports.build, reports.commands, human_eval.export, common.imagestore; "
        "print(sorted(m for m in ('torch', 'imagen', 'bench') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.strip()
    assert out == "[]"


def test_help_groups_every_command_once():
    from imagen_bench.cli import COMMANDS, GROUPS, WIRING

    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(COMMANDS) and set(WIRING) <= set(COMMANDS)
