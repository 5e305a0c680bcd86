"""`imagen-bench trials detect-controls`: can a script in the browser tell control trials apart?

    1. create a drawbench_sbs study of the real SD v1.4 vs v1.5 DrawBench images (one image per set)
       with a large control share (more controls, more trials; the design is the same);
    2. serve it with `imagen-bench rate` and let two bot raters work through their whole queues in
       headless Chromium, recording everything the page receives per task (detect_features.TaskView:
       caption, image srcs and bytes, pixel sizes, DOM sequence, render time, websocket bytes, HTTP
       responses). The bot answers the way the issue's bot did: the side whose image it has seen
       before (exact file or perceptual hash), else at random;
    3. score every task with each detector, alone (one rater) and comparing notes (two colluding
       raters), and classify a balanced set (every control + as many ordinary tasks; top half by
       score = "control"): accuracy with a Wilson 95 % interval, chance = 0.5;
    4. read the bots' answers from the database: their control accuracy and whether they pass the
       study's 80 % filter.
PASS when every served image has one length and one JPEG table, no src / bytes / file repeats in a
rater's queue, images cause no HTTP request, and both combined detectors' intervals contain 0.5 over
at least --min-trials trials. A judgment of the pictures themselves (one side blurrier) is reported
beside them: that is what raters are asked to do, not a leak.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common.options import seed_int

from .detect_features import (
    Digest,
    Shown,
    TaskView,
    balanced_accuracy,
    colluding_scores,
    combined,
    content_scores,
    decode_src,
    dhash,
    single_rater_scores,
    strip_comments,
    wilson,
)
from .harness import Check, finish, fresh_workdir
from .kill_server import CHROMIUM_ARGS, chromium_path, serving
from .rater_client import ALL_DONE, IDLE_JS, PROGRESS

SD = Path(__file__).resolve().parents[3] / "shared" / "data" / "drawbench-sd"
LABELS = {"left": "I prefer set A", "tie": "I am indifferent", "right": "I prefer set B"}
VIEW_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  const imgs = [...main.querySelectorAll('[data-testid="stImage"] img')];
  return {srcs: imgs.map(i => i.getAttribute('src')), dims: imgs.map(i => [i.naturalWidth, i.naturalHeight]),
          text: main.innerText, dom: [...main.querySelectorAll('[data-testid]')].map(e => e.getAttribute('data-testid')).join(' ')};
}"""
LOADED_JS = """() => { const im = [...document.querySelectorAll('[data-testid="stImage"] img')];
                       return im.length > 0 && im.every(i => i.complete && i.naturalWidth > 0); }"""


@dataclass(frozen=True)
class DetectSettings:
    prompts: str = "drawbench"
    control_share: float = 0.4
    batch_size: int = 50
    min_trials: int = 200
    seed: int = 0
    images: Path = SD
    workdir: Path = Path("runs/trials/detect-controls")
    timeout: float = 3000.0

    def __post_init__(self):
        if not 0 < self.control_share < 0.5:
            raise ValueError(f"--control-share must be in (0, 0.5), got {self.control_share}")
        if self.min_trials < 2:
            raise ValueError(f"--min-trials must be >= 2, got {self.min_trials}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = DetectSettings()
    p.add_argument(
        "--prompts", default=d.prompts, help=f"DrawBench prompts of the study (default {d.prompts}: all 200)"
    )
    p.add_argument(
        "--control-share",
        type=float,
        default=d.control_share,
        help=f"share of prompts set aside for controls ({d.control_share})",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"tasks per batch (default {d.batch_size})")
    p.add_argument(
        "--min-trials",
        type=int,
        default=d.min_trials,
        help=f"classified tasks needed for a verdict (default {d.min_trials})",
    )
    p.add_argument(
        "--seed", type=seed_int, default=d.seed, help="seed of the study plan, the bots and the balanced sets"
    )
    p.add_argument(
        "--images",
        type=Path,
        default=d.images,
        help=f"folder with sd-v1-4/ and sd-v1-5/ DrawBench images (default {d.images})",
    )
    p.add_argument("--workdir", type=Path, default=d.workdir, help=f"trial work directory (default {d.workdir})")


def run(args: argparse.Namespace) -> int:
    return run_trial(
        DetectSettings(
            prompts=args.prompts,
            control_share=args.control_share,
            batch_size=args.batch_size,
            min_trials=args.min_trials,
            seed=args.seed,
            images=Path(args.images),
            workdir=Path(args.workdir),
        )
    )


def run_trial(s: DetectSettings) -> int:
    from scipy.stats import binom

    from human_eval.contract import control_accuracy
    from human_eval.export import answers_frame
    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study, read_secrets

    browser = chromium_path()
    if browser is None:
        raise ValueError("chromium not found (/usr/bin/chromium or $IMAGEN_BENCH_CHROMIUM): apt-get install chromium")
    a, b = s.images / "sd-v1-4", s.images / "sd-v1-5"
    if not (a.is_dir() and b.is_dir()):
        raise ValueError(
            f"--images {s.images} must hold the folders sd-v1-4/ and sd-v1-5/ (DrawBench images named by prompt id)"
        )
    t0 = time.monotonic()
    wd = fresh_workdir(s.workdir)
    for old in (wd / "study", wd / "logs"):
        shutil.rmtree(old, ignore_errors=True)
    study = create_study(
        wd / "study",
        StudySettings(
            protocol="drawbench_sbs",
            a=f"folder:{a}",
            b=f"folder:{b}",
            prompts=s.prompts,
            images_per_set=1,
            plan=PlanSettings(raters=2, batch_size=s.batch_size, control_share=s.control_share, seed=s.seed),
        ),
    )
    store = study.store()
    queues = {r: store.tasks(r) for r in ("r01", "r02")}
    store.close()
    tokens = read_secrets(study.root)["raters"]
    print(
        f"detect-controls: 2 bot raters x {len(queues['r01'])} tasks ({sum(t.is_control for t in queues['r01'])} controls each), "
        f"workdir {wd}",
        flush=True,
    )
    with serving(study.root, wd / "logs") as url:
        views = asyncio.run(asyncio.wait_for(_session(browser, url, tokens, queues, s.seed), s.timeout))
    frame = answers_frame(study.root)
    bots = control_accuracy(frame, study.control_threshold)
    checks, facts = _verdict(views, s)
    facts["bots"] = [
        {
            "rater": r.rater,
            "controls": int(r.n_control),
            "right": int(r.n_correct),
            "accuracy": round(float(r.accuracy), 3),
            "passes_filter": not bool(r.flagged),
        }
        for r in bots.itertuples()
    ]
    facts["bot_pass_rate"] = f"{sum(b['passes_filter'] for b in facts['bots'])} of {len(facts['bots'])}"
    # with no signal the bot guesses among the three options: its chance of passing the filter anyway
    n_ctrl = min(b["controls"] for b in facts["bots"])
    facts["guesser_pass_probability"] = float(binom.sf(math.ceil(study.control_threshold * n_ctrl) - 1, n_ctrl, 1 / 3))
    print(
        f"  a rater guessing at random passes the {study.control_threshold:.0%} filter over {n_ctrl} control answers with "
        f"probability {facts['guesser_pass_probability']:.1e}",
        flush=True,
    )
    for b in facts["bots"]:
        print(
            f"  bot {b['rater']}: {b['right']}/{b['controls']} control answers right ({b['accuracy']:.0%}); "
            f"{'passes' if b['passes_filter'] else 'fails'} the {study.control_threshold:.0%} filter",
            flush=True,
        )
    facts["settings"] = {**asdict(s), "images": str(s.images), "workdir": str(s.workdir)}
    return finish(wd, "detect-controls", checks, facts, time.monotonic() - t0)


def _verdict(views: dict[str, list[TaskView]], s: DetectSettings) -> tuple[list[Check], dict]:
    everything = [v for vs in views.values() for v in vs]
    dg = Digest(everything)
    results, single, colluding = {}, {}, {}
    raters = sorted(views)
    for r, partner in zip(raters, reversed(raters)):
        mine = views[r]
        one = single_rater_scores(mine, dg)
        two = {**one, **colluding_scores(mine, views[partner], dg)}
        for name, sc in {
            **one,
            **colluding_scores(mine, views[partner], dg),
            **content_scores(mine, dg),
            "ALL: one rater, every client-view detector": combined(one),
            "ALL: two colluding raters, every client-view detector": combined(two),
        }.items():
            right, n = balanced_accuracy(sc, [v.is_control for v in mine], random.Random(f"{s.seed}-{r}-{name}"))
            prev = results.get(name, (0, 0))
            results[name] = (prev[0] + right, prev[1] + n)
    table = []
    for name, (right, n) in results.items():
        lo, hi = wilson(right, n)
        table.append(
            {
                "detector": name,
                "right": right,
                "trials": n,
                "accuracy": round(right / n, 3),
                "low": round(lo, 3),
                "high": round(hi, 3),
            }
        )
        (single if name.startswith("ALL: one") else colluding if name.startswith("ALL: two") else {})["row"] = table[
            -1
        ]
    width = max(len(t["detector"]) for t in table)
    for t in table:
        print(
            f"  {t['detector']:<{width}}  {t['accuracy']:.3f} [{t['low']:.3f}, {t['high']:.3f}]  ({t['right']}/{t['trials']})"
        )
    sizes = {len(im.data) for v in everything for im in v.images}
    tabs = {dg.table[k] for k in dg.table}
    repeats = {
        r: sum(
            len(lst) - len(set(lst))
            for lst in ([dg.url[k] for k in dg.url if k[0] == r], [dg.raw[k] for k in dg.raw if k[0] == r])
        )
        for r in raters
    }
    # the same picture twice in one queue happens in the data itself (the SD folders hold a few black,
    # safety-filtered images); said here, and the "file seen in another task" detector covers it
    same_file = {r: (lambda lst: len(lst) - len(set(lst)))([dg.core[k] for k in dg.core if k[0] == r]) for r in raters}
    http = sorted({h for v in everything for h in v.http if _image_over_http(h)})
    s1, s2 = single["row"], colluding["row"]
    checks = [
        Check("every served image has one byte length", len(sizes) == 1, f"lengths: {sorted(sizes)[:5]}"),
        Check("one JPEG quantization table", len(tabs) == 1, f"{len(tabs)} table(s)"),
        Check(
            "no src or bytes twice in a rater's queue",
            not any(repeats.values()),
            f"repeats per rater: {repeats}; identical pictures (in the source data) per rater: {same_file}",
        ),
        Check("no image comes over HTTP (data: URLs only)", not http, f"{len(http)} kinds: {http[:3]}"),
        Check(
            f"enough trials (>= {s.min_trials})",
            min(s1["trials"], s2["trials"]) >= s.min_trials,
            f"{s1['trials']} trials",
        ),
        Check(
            "one rater: combined detector at chance (interval holds 0.5)",
            s1["low"] <= 0.5 <= s1["high"],
            f"{s1['accuracy']:.3f} [{s1['low']:.3f}, {s1['high']:.3f}]",
        ),
        Check(
            "two colluding raters: combined detector at chance",
            s2["low"] <= 0.5 <= s2["high"],
            f"{s2['accuracy']:.3f} [{s2['low']:.3f}, {s2['high']:.3f}]",
        ),
    ]
    return checks, {"detectors": table, "tasks_seen": {r: len(vs) for r, vs in views.items()}}


async def _session(browser_path: str, url: str, tokens: dict, queues: dict, seed: int) -> dict[str, list[TaskView]]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS, headless=True)
        try:
            got = await asyncio.gather(
                *(_bot(b, r, f"{url}/?t={tokens[r]}", q, random.Random(f"{seed}-{r}")) for r, q in queues.items())
            )
        finally:
            await b.close()
    return dict(zip(queues, got))


async def _state(page, moved_from: int | None, sizes: dict[int, int]) -> tuple[str, int | None]:
    """("done" | "break" | "task", queue index) once the page is idle (and, with moved_from, past it)."""
    end = time.monotonic() + 120
    while time.monotonic() < end:
        try:
            text = await page.inner_text("body", timeout=2000)
            idle = await page.evaluate(IDLE_JS)
        except Exception:
            idle = False
        if idle and ALL_DONE.search(text):
            return "done", None
        m = PROGRESS.search(text) if idle else None
        if m:
            batch, done = int(m.group(1)), int(m.group(3))
            index = sum(n for bb, n in sizes.items() if bb < batch) + done
            if re.search(rf"Start batch {batch}\b", text):
                return "break", index
            if "Submit" in text and index != moved_from:
                return "task", index
        await asyncio.sleep(0.1)
    raise TimeoutError("the rating page did not settle within 120 s")


async def _bot(browser, rater: str, link: str, tasks: list, rng: random.Random) -> list[TaskView]:
    from playwright.async_api import expect

    ctx = await browser.new_context(viewport={"width": 1400, "height": 1100})
    page = await ctx.new_page()
    ws_bytes, http = [0], []
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda payload: ws_bytes.__setitem__(0, ws_bytes[0] + len(payload))),
    )
    # every response the page gets (a data: URL shows up as one too, with no request on the wire)
    page.on(
        "response",
        lambda r: http.append(
            f"{r.url.split(',')[0].split('?')[0][:80]} {r.status} {r.headers.get('content-type', '')} "
            f"{' '.join(sorted(r.headers))}"
        ),
    )
    sizes: dict[int, int] = {}
    for t in tasks:
        sizes[t.batch] = sizes.get(t.batch, 0) + 1
    seen_files, seen_hashes = set(), []
    views: list[TaskView] = []
    await page.goto(link, timeout=60_000)
    clicked, last = time.monotonic(), None
    while True:
        kind, index = await _state(page, last, sizes)
        if kind == "done":
            break
        if kind == "break":
            start = page.get_by_role("button", name=re.compile(r"^Start batch \d+$"))
            await start.click()
            await start.wait_for(state="detached", timeout=60_000)  # the rerun has begun: the next state is the task
            clicked, last = time.monotonic(), None
            continue
        await page.wait_for_function(LOADED_JS, timeout=60_000)
        render = time.monotonic() - clicked
        info = await page.evaluate(VIEW_JS)
        caption = re.search(r"Text caption:\s*(.*)", info["text"])
        shown = tuple(
            Shown(src, decode_src(src), tuple(d), k) for k, (src, d) in enumerate(zip(info["srcs"], info["dims"]))
        )
        task = tasks[index]
        views.append(
            TaskView(
                rater,
                index,
                task.is_control,
                caption.group(1).strip() if caption else "",
                shown,
                info["dom"],
                round(render, 4),
                ws_bytes[0],
                tuple(http),
            )
        )
        side = _remembered_side(shown, seen_files, seen_hashes)
        for im in shown:
            seen_files.add(strip_comments(im.data))
            seen_hashes.append(dhash(im.data))
        radios = page.locator("[data-testid='stRadio']")
        for k in range(2):
            label = LABELS[side] if side else LABELS[rng.choice(("left", "tie", "right"))]
            await radios.nth(k).get_by_text(label, exact=True).click()
            await expect(radios.nth(k).get_by_role("radio", name=label)).to_be_checked(timeout=30_000)
        ws_bytes[0], http[:] = 0, []
        clicked, last = time.monotonic(), index
        await page.get_by_role("button", name="Submit").click()
    await ctx.close()
    return views


def _image_over_http(response: str) -> bool:
    """A study image fetched over HTTP (Streamlit's /media/ route or any image but the page's favicon)."""
    url, _, ctype = response.split(" ", 3)[:3]
    if url.startswith("data:"):
        return False
    return ("/media/" in url and "/static/" not in url) or (
        ctype.startswith("image/") and not url.endswith("/favicon.png")
    )


def _remembered_side(shown: tuple[Shown, ...], files: set, hashes: list[int]) -> str | None:
    """The issue's bot: a side whose image it has met before (the original of a control) is the right one."""
    known = [
        strip_comments(im.data) in files or any(bin(dhash(im.data) ^ h).count("1") <= 6 for h in hashes)
        for im in shown
    ]
    if len(known) == 2 and known[0] != known[1]:
        return "left" if known[0] else "right"
    return None
