"""`imagen-bench trials security`: the rating app's secrets and access rules, checked on a real study.

    tokens       new_token() uses `secrets` with >= 128 bits: many tokens, all distinct, URL-safe
                 alphabet used uniformly, length x log2(alphabet) >= 128; a created study's tokens too
    compare      match_token compares with hmac.compare_digest against every stored hash (no early
                 exit: counted), and its time does not depend on how much of the hash matches
    app          the Streamlit app (streamlit.testing.v1.AppTest) refuses forged / truncated / padded
                 tokens and a rater token on the admin page; a rater token with another rater's id
                 and task id in the query shows and stores only that rater's own tasks
    store        submitting / reading another rater's task is refused and changes nothing
    images       image_path refuses ../, absolute, URL-encoded and unknown ids, and symlinks that
                 leave the study's images/ folder
    permissions  secrets.json and ratings.sqlite (token hashes, ratings) are not readable by group / others
    spec_paths   a sweep spec cannot write outside its run folder: names / labels with '/', '..' or an
                 absolute path are refused at parse time, and RunStore refuses any path that resolves outside
    csv          every CSV the suite writes neutralises cells a spreadsheet would run as a formula
                 (= + - @ tab CR), in the study export of a real study as in common.tables
    server       the real rating server (`imagen-bench rate`) answers 404 on Streamlit's metrics and
                 upload endpoints and sends the security headers (human_eval.web_guard) on every response
Each check is a function returning a list of problems (empty = passed); WORK/security-summary.json
holds every check's details.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import shutil
import stat
import statistics
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from human_eval import tokens as tok
from human_eval.store import AccessDenied
from human_eval.web_guard import SECURITY_HEADERS

from .harness import write_summary
from .security_app import check_app
from .study_sources import synthetic_sources

MARKER = ".imagen-bench-trial-security"


@dataclass(frozen=True)
class SecuritySettings:
    workdir: Path = Path("trials/security")
    tokens: int = 20_000  # tokens generated for the entropy check
    timing_rounds: int = 40  # interleaved timing rounds (each times `timing_calls` calls per case)
    timing_calls: int = 300
    timing_tolerance: float = 0.25  # |median(full-prefix) - median(no-prefix)| / median(no-prefix) allowed


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = SecuritySettings()
    p.add_argument(
        "--workdir", type=Path, required=True, help="scratch folder for the study (new or from an earlier run)"
    )
    p.add_argument("--tokens", type=int, default=d.tokens, help="tokens generated for the entropy check")
    p.add_argument(
        "--timing-rounds", type=int, default=d.timing_rounds, help="rounds of the constant-time measurement"
    )


# -- tokens --------------------------------------------------------------------------------------


def check_tokens(s: SecuritySettings, study_root: Path, details: dict) -> list[str]:
    from human_eval.study import read_secrets

    problems = []
    source = inspect.getsource(tok.new_token)
    if "secrets." not in source:
        problems.append("new_token does not use the secrets module")
    made = [tok.new_token() for _ in range(s.tokens)]
    alphabet = Counter("".join(made))
    lengths = {len(t) for t in made}
    bits = min(lengths) * math.log2(64)
    total = sum(alphabet.values())
    per_char = -sum(c / total * math.log2(c / total) for c in alphabet.values())  # empirical bits per character
    if len(set(made)) != len(made):
        problems.append(f"{len(made) - len(set(made))} repeated tokens among {len(made)}")
    if not set(alphabet) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"):
        problems.append(f"characters outside the URL-safe alphabet: {sorted(set(alphabet))[:10]}")
    if bits < 128:
        problems.append(f"tokens carry {bits:.0f} bits (< 128)")
    if per_char < 5.95:  # a uniform 64-symbol alphabet gives 6.0; sampling noise at 20 k tokens is ~0.001
        problems.append(f"characters are not uniform: {per_char:.3f} bits per character (uniform: 6.0)")
    secrets_json = read_secrets(study_root)
    study_tokens = [secrets_json["admin"], *secrets_json["raters"].values()]
    if len(set(study_tokens)) != len(study_tokens) or min(map(len, study_tokens)) < 43:
        problems.append("the study's tokens repeat or are shorter than new_token()'s")
    details.update(
        n=len(made),
        lengths=sorted(lengths),
        encoded_bits=round(bits, 1),
        bits_per_char=round(per_char, 4),
        alphabet=len(alphabet),
        uses_secrets="secrets." in source,
    )
    return problems


def check_compare(s: SecuritySettings, study_root: Path, details: dict) -> list[str]:
    problems = []
    if "hmac.compare_digest" not in inspect.getsource(tok.match_token):
        problems.append("match_token does not use hmac.compare_digest")
    # behaviour: every stored hash is compared, whichever matches (no early exit)
    calls = []
    real = tok.hmac.compare_digest

    def counting(a, b):
        calls.append(1)
        return real(a, b)

    t = tok.new_token()
    hashes = {"r01": tok.hash_token(t), **{f"r{i:02d}": tok.hash_token(tok.new_token()) for i in range(2, 9)}}
    tok.hmac.compare_digest = counting
    try:
        found = tok.match_token(t, hashes)
    finally:
        tok.hmac.compare_digest = real
    if found != "r01" or len(calls) != len(hashes):
        problems.append(
            f"match_token compared {len(calls)} of {len(hashes)} stored hashes (early exit) or matched {found!r}"
        )
    # timing: a stored hash sharing 0 vs 63 leading characters with the token's hash
    given = tok.hash_token(t)
    flip = {c: "0" if c != "0" else "1" for c in "0123456789abcdef"}
    cases = {k: {"x": given[:k] + "".join(flip[c] for c in given[k:])} for k in (0, 32, 63)}
    times: dict[int, list[float]] = {k: [] for k in cases}
    for _ in range(s.timing_rounds):
        for k, stored in cases.items():
            t0 = time.perf_counter_ns()
            for _ in range(s.timing_calls):
                tok.match_token(t, stored)
            times[k].append((time.perf_counter_ns() - t0) / s.timing_calls)
    med = {k: statistics.median(v) for k, v in times.items()}
    rel = max(abs(med[k] - med[0]) / med[0] for k in med)
    if rel > s.timing_tolerance:
        problems.append(f"match time depends on the matching prefix: medians {med} ns (relative spread {rel:.2f})")
    details.update(
        compares_per_call=len(calls),
        stored=len(hashes),
        median_ns_by_prefix=med,
        relative_spread=round(rel, 3),
        tolerance=s.timing_tolerance,
    )
    return problems


# -- store, images, permissions -------------------------------------------------------------------


def check_store(s: SecuritySettings, study_root: Path, details: dict) -> list[str]:
    from human_eval.study import load_study, read_secrets

    study = load_study(study_root)
    store = study.store()
    keys = read_secrets(study_root)
    problems, before = [], store.answer_rows()
    other = store.tasks("r02")[0]
    for what, attempt in (
        ("submit another rater's task", lambda: store.submit("r01", other.task_id, {"caption": "yes"}, 5)),
        ("read another rater's task", lambda: store.task("r01", other.task_id)),
        ("read an unknown task", lambda: store.task("r01", "../" + other.task_id)),
    ):
        try:
            attempt()
            problems.append(f"{what}: allowed")
        except AccessDenied:
            pass
    forged = {
        "forged": "forged-" + keys["raters"]["r01"][7:],
        "truncated": keys["raters"]["r01"][:-1],
        "padded": keys["raters"]["r01"] + "A",
        "hash": store._query("SELECT token_sha256 FROM raters LIMIT 1")[0][0],
        "traversal": "../../secrets.json",
        "empty": "",
        "none": None,
    }
    for name, token in forged.items():
        if store.rater_for_token(token) is not None or store.is_admin(token):
            problems.append(f"{name} token accepted")
    if store.is_admin(keys["raters"]["r01"]) or store.rater_for_token(keys["admin"]) is not None:
        problems.append("a rater token is an admin token or the other way round")
    if store.answer_rows() != before:
        problems.append("refused requests changed the ratings database")
    store.close()
    details.update(refused_tokens=sorted(forged))
    return problems


TRAVERSALS = (
    "../study.json",
    "../secrets.json",
    "/etc/passwd",
    "..%2fsecrets.json",
    "%2e%2e%2fstudy.json",
    "images/../../secrets.json",
    "0" * 32,
    "A" * 32,
    "",
    "\x00",
)


def check_images(s: SecuritySettings, study_root: Path, details: dict) -> list[str]:
    from human_eval.study import load_study

    problems = []
    study = load_study(study_root)
    for bad in TRAVERSALS:
        try:
            study.image_path(bad)
            problems.append(f"image_path({bad!r}) was served")
        except AccessDenied:
            pass
    # a symlink inside images/ pointing out of the study is refused (on a copy of the study)
    copy = study_root.with_name(study_root.name + "-symlink")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(study_root, copy, symlinks=True)
    iid, name = next(iter(study.images.items()))
    (copy / "images" / name).unlink()
    (copy / "images" / name).symlink_to(copy / "secrets.json")
    try:
        load_study(copy).image_path(iid)
        problems.append("an image symlinked to secrets.json was served")
    except AccessDenied:
        pass
    if study.image_path(iid).parent != study.root / "images":
        problems.append("a real image id was not served from images/")
    details.update(refused=list(TRAVERSALS) + ["symlink to ../secrets.json"])
    return problems


def check_permissions(s: SecuritySettings, study_root: Path, details: dict) -> list[str]:
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode) for p in (study_root / "secrets.json", study_root / "ratings.sqlite")
    }
    details.update({name: oct(mode) for name, mode in modes.items()})
    return [f"{name} is readable by group/others (mode {oct(mode)})" for name, mode in modes.items() if mode & 0o077]


TRAVERSAL = ("../../../../escape/pwned", "../x", "/tmp/abs", "a/b", "..", ".hidden")


def check_spec_paths(s: SecuritySettings, study_root: Path, details: dict) -> list[str]:
    from bench.sweep.spec import parse_spec
    from bench.sweep.store import RunStore

    base = {
        "sweep": '[sweep]\nname = "{v}"\n',
        "model": '[[models]]\nname = "{v}"\nkind = "folder"\npath = "p"\n',
        "prompt_set": '[[prompt_sets]]\nname = "drawbench"\nlabel = "{v}"\n',
        "metric": '[[metrics]]\nname = "ocr"\nlabel = "{v}"\n',
    }
    problems, tried = [], 0
    for where, template in base.items():
        for value in TRAVERSAL:
            parts = {
                k: (template if k == where else t).replace("{v}", value if k == where else "ok")
                for k, t in base.items()
            }
            tried += 1
            try:
                parse_spec("".join(parts.values()).encode())
                problems.append(f"spec with {where} {value!r} was accepted")
            except ValueError:
                pass
    store = RunStore(study_root.parent / "run-paths")
    for rel in ("../outside.png", "images/../../outside.png", "/tmp/outside.png"):
        tried += 1
        try:
            store.inside(rel)
            problems.append(f"RunStore accepted the path {rel!r}")
        except ValueError:
            pass
    details["cases"] = tried
    return problems


def check_csv(s: SecuritySettings, study_root: Path, details: dict) -> list[str]:
    import pandas as pd

    from common.tables import FORMULA_STARTS, to_csv
    from human_eval.export import answers_frame, write_answers

    frame = answers_frame(study_root)
    problems = []
    for _i, start in enumerate(FORMULA_STARTS):
        evil = frame.assign(category=f'{start}HYPERLINK("http://evil.example","x")')
        back = pd.read_csv(__import__("io").StringIO(to_csv(evil)), dtype=str, keep_default_na=False)
        if not back["category"].str.startswith("'").all():
            problems.append(f"a cell starting with {start!r} left as a formula")
    out = study_root.parent / "export-check.csv"
    out.unlink(missing_ok=True)
    Path(f"{out}.meta.json").unlink(missing_ok=True)
    write_answers(study_root, out)  # the real export path, on the real study (its cells are plain text)
    details.update({"prefixes": len(FORMULA_STARTS), "export_rows": len(frame)})
    return problems


def check_server(s: SecuritySettings, study_root: Path, details: dict) -> list[str]:

    from .kill_server import serving

    def get(url: str) -> tuple[int, dict, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    want = {k.decode(): v.decode() for k, v in SECURITY_HEADERS}
    problems = []
    with serving(study_root, study_root.parent / "server-logs") as url:
        for path in ("/_stcore/metrics", "/_stcore/upload_file/session/file"):
            status, _, body = get(url + path)
            if status != 404 or b"session_events" in body:
                problems.append(f"{path} answered {status} without a token")
        for path in ("/", "/_stcore/health", "/?t=forged", "/_stcore/metrics"):
            _, headers, _ = get(url + path)
            missing = sorted(k for k, v in want.items() if headers.get(k) != v)
            if missing:
                problems.append(f"{path}: security headers missing or different: {', '.join(missing)}")
    details.update({"blocked": 2, "headers": sorted(want), "paths_checked": 4})
    return problems


def _app_checks() -> Callable:
    return check_app


CHECKS: dict[str, Callable] = {
    "tokens": check_tokens,
    "compare": check_compare,
    "store": check_store,
    "images": check_images,
    "permissions": check_permissions,
    "spec_paths": check_spec_paths,
    "csv": check_csv,
    "server": check_server,
    "app": lambda s, root, d: _app_checks()(s, root, d),
}


def make_study(work: Path) -> Path:
    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study

    captions, model, _ = synthetic_sources(work / "sources", n=4, size=32)
    study = create_study(
        work / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            plan=PlanSettings(raters=2, batch_size=4),
        ),
    )
    return study.root


def run(args: argparse.Namespace) -> int:
    s = SecuritySettings(workdir=args.workdir, tokens=args.tokens, timing_rounds=args.timing_rounds)
    t0 = time.perf_counter()
    work = s.workdir.resolve()
    if work.exists() and any(work.iterdir()) and not (work / MARKER).exists():
        raise ValueError(f"--workdir {work} is not empty and was not made by the security trial; choose a new folder")
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).touch()
    for sub in ("sources", "study", "study-symlink"):
        shutil.rmtree(work / sub, ignore_errors=True)
    root = make_study(work)
    results = {}
    for name, check in CHECKS.items():
        details: dict = {}
        c0 = time.perf_counter()
        try:
            problems = check(s, root, details)
        except Exception as e:
            problems = [f"check crashed: {type(e).__name__}: {e}"]
        results[name] = {
            "passed": not problems,
            "problems": problems,
            "details": details,
            "seconds": round(time.perf_counter() - c0, 2),
        }
        print(
            f"{'ok  ' if not problems else 'FAIL'} {name:<12} {results[name]['seconds']:6.1f}s "
            + ("; ".join(problems) if problems else json.dumps(details, default=str)[:150]),
            flush=True,
        )
    failed = [n for n, r in results.items() if not r["passed"]]
    summary = {
        "trial": "security",
        "settings": {**asdict(s), "workdir": str(work)},
        "checks": len(results),
        "failures": len(failed),
        "failed": failed,
        "results": results,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_summary(work / "security-summary.json", summary)
    print(
        f"security: {len(results)} checks, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}, "
        f"{summary['seconds']:.0f} s -> {work / 'security-summary.json'}"
    )
    return 0 if not failed else 1
