"""The fuzz and security trials at CI size, through their run(args) entry points (the same code
`imagen-bench trials fuzz|security` runs), plus regression tests for each class of bug the fuzz
trial found: every one must be refused with one clear line naming the problem."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import struct

import numpy as np
import pytest
from PIL import Image

from selfcheck.trials import fuzz, security


def _args(module, *argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(list(argv))


@pytest.mark.slow
def test_fuzz_trial_ci_size(tmp_path):
    work = tmp_path / "fuzz"
    assert (
        fuzz.run(_args(fuzz, "--cases", "12", "--seed", "0", "--workdir", str(work), "--subprocess-every", "6")) == 0
    )
    summary = json.loads((work / "fuzz-summary.json").read_text())
    assert summary["cases"] == 12 and summary["failures"] == 0 and summary["passed"] == 12
    assert summary["subprocess_cases"] == 2 and summary["exit_0"] + summary["exit_2"] == 12
    assert set(summary["by_domain"]) == set(fuzz.DOMAINS)  # every kind of input at CI size


def test_security_trial(tmp_path):
    work = tmp_path / "sec"
    assert security.run(_args(security, "--workdir", str(work), "--tokens", "5000", "--timing-rounds", "20")) == 0
    summary = json.loads((work / "security-summary.json").read_text())
    assert summary["checks"] == len(security.CHECKS) and summary["failures"] == 0
    assert summary["results"]["tokens"]["details"]["encoded_bits"] >= 128
    assert summary["results"]["permissions"]["details"]["secrets.json"] == "0o600"


def test_the_app_check_reads_the_page_without_the_images_base64():
    """The foreign-id check looks for "r02" in every text the page shows; an image element's value is a
    list of data: URLs whose random padding held "r02" in about one render of 100 (a flaky failure).
    The URLs are cut out wherever they sit; the text around them is still read."""
    from selfcheck.trials.security_app import DATA_URL

    value = "['data:image/jpeg;base64,/9j/r02+Ab==', 'data:image/png;base64,iVBr02w=']"
    assert "r02" not in DATA_URL.sub("", value) and DATA_URL.sub("", value) == "['', '']"
    assert DATA_URL.sub("", "rater r02 data:image/jpeg;base64,r02== seen") == "rater r02  seen"


# -- regressions: one per class of bug the fuzz trial found ---------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Valid inputs (selfcheck.trials.fuzz_targets) in WORK/pristine; each test edits a fresh WORK/live."""
    from selfcheck.trials.fuzz_targets import build_pristine

    work = tmp_path_factory.mktemp("regress")
    build_pristine(work / "pristine", work / "live")
    return work


def _json_edit(rel: str, fn):
    def edit(live):
        path = live / rel
        data = json.loads(path.read_text())
        fn(data)
        path.write_text(json.dumps(data))

    return edit


def _write(rel: str, data: bytes):
    return lambda live: (live / rel).write_bytes(data)


def _spec_edit(old: str, new: str):
    def edit(live):
        spec = live / "spec.toml"
        spec.write_text(spec.read_text().replace(old, new, 1))

    return edit


def _sqlite_without_tables(live):
    (live / "study" / "ratings.sqlite").unlink()
    sqlite3.connect(live / "study" / "ratings.sqlite").execute("CREATE TABLE other (x)").connection.commit()


def _flip_weights(live):
    path = live / "ckpt" / "sr16" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x55
    path.write_bytes(bytes(data))


def _png(live, name: str, width: int, height: int):
    from selfcheck.trials.fuzz_media import _png_with_size

    (live / "model-x" / name).write_bytes(_png_with_size(width, height))


REGRESSIONS = {  # name -> (command, edit of live/, fragment of the one-line error)
    "safetensors header": (
        "sample",
        _write("ckpt/base/model.safetensors", struct.pack("<Q", 1 << 60) + b"{}"),
        "is not a readable safetensors file",
    ),
    "weights changed after saving": ("sample", _flip_weights, "does not match the weights_sha256"),
    "config.json not UTF-8": (
        "sample",
        _write("ckpt/sr32/config.json", b"\xff\xfe{"),
        "config.json is not valid JSON",
    ),
    "U-Net config of the wrong type": (
        "sample",
        _json_edit("ckpt/base/config.json", lambda d: d["stage"]["unet"].update(dim="wide")),
        "config.json has an invalid",
    ),
    "cascade.json stages": (
        "sweep",
        _json_edit("ckpt/cascade.json", lambda d: d.update(stages=["base", 2.5])),
        "'stages' must list",
    ),
    "cascade.json stage traversal": (
        "sample",
        _json_edit("ckpt/cascade.json", lambda d: d.update(stages=["../ckpt/base"])),
        "'stages' must list",
    ),
    "ratings DB garbage": ("study-status", _write("study/ratings.sqlite", os.urandom(4096)), "ratings.sqlite"),
    "ratings DB empty": ("study-export", _write("study/ratings.sqlite", b""), "tables"),
    "ratings DB other tables": (
        "study-status",
        _sqlite_without_tables,
        "tables ['answers', 'raters', 'studies', 'tasks'] are missing",
    ),
    "secrets.json shape": ("study-links", _write("study/secrets.json", b'{"admin": 1}'), "secrets.json must hold"),
    "secrets.json not UTF-8": (
        "study-links",
        _write("study/secrets.json", b"\xff{}"),
        "secrets.json is not valid JSON",
    ),
    "truncated image in a folder model": (
        "sweep",
        lambda live: (live / "model-x" / "2.png").write_bytes((live / "model-x" / "2.png").read_bytes()[:60]),
        "cannot read image",
    ),
    "folder named .png": (
        "sweep",
        lambda live: ((live / "model-x" / "3.png").unlink(), (live / "model-x" / "3.png").mkdir()),
        "3.png",
    ),
    "text named .png in a study": ("study-create", _write("model-x/1.png", b"not an image"), "cannot read image"),
    "decompression bomb in a study": (
        "study-create",
        lambda live: _png(live, "1.png", 100_000, 100_000),
        "too many pixels",
    ),
    "empty prompt CSV": ("study-create", _write("captions.csv", b""), "captions.csv is not a readable prompt CSV"),
    "prompt CSV not UTF-8": ("sweep", _write("captions.csv", b"id,category,prompt\n1,a,\xff\xfe\n"), "captions.csv"),
    "prompt CSV bad id": (
        "study-create",
        _write("captions.csv", b"id,category,prompt\n1,a,x\nabc,a,y\n"),
        "column 'id'",
    ),
    "prompt CSV first row too long": (
        "study-create",
        _write("captions.csv", b"id,category,prompt\n1,a,x,extra\n2,a,y\n"),
        "captions.csv is not a readable",
    ),
    "prompt CSV duplicate id": (
        "study-create",
        _write("captions.csv", b"id,category,prompt\n1,a,x\n1,a,y\n"),
        "duplicate id 1",
    ),
    "spec error names the file": (
        "sweep",
        _spec_edit("[grid]", "[grid]\nstepz = [1]"),
        "spec.toml: unknown keys ['stepz']",
    ),
    "model option of the wrong type": (
        "sweep",
        _spec_edit("batch_size = 4", 'batch_size = "four"'),
        "batch_size must be an integer",
    ),
    "stage override not a table": (
        "sweep",
        _spec_edit("[models.stages.sr16]\nsteps = 1", "[models.stages]\nsr16 = 2.5"),
        "stages.sr16 must be a table",
    ),
    # issue 22 (hostile specs, odd files): each refused with one line, nothing written
    "prompt-set label traversal": (
        "sweep",
        _spec_edit('label = "mine"', 'label = "../../../../escape/pwned"'),
        "label must be 1-100 characters",
    ),
    "sweep name traversal": (
        "sweep",
        _spec_edit('name = "fuzz"', 'name = "../escape"'),
        "sweep.name must be 1-100 characters",
    ),
    "nan guidance": ("sweep", _spec_edit("guidance = [1.0]", "guidance = [nan]"), "must hold finite numbers"),
    "steps 10**12": (
        "sweep",
        _spec_edit("steps = [1]", "steps = [1000000000000]"),
        "grid.steps = 1000000000000: steps must be in [1, 10000]",
    ),
    "samples_per_prompt true": (
        "sweep",
        _spec_edit("samples_per_prompt = 1", "samples_per_prompt = true"),
        "samples_per_prompt must be an integer",
    ),
    "empty categories": (
        "sweep",
        _spec_edit('label = "mine"', 'label = "mine"\ncategories = []'),
        "categories must be a non-empty list",
    ),
    "metric options not a table": (
        "sweep",
        _spec_edit("[grid]", '[[metrics]]\nname = "fid"\noptions = 5\n\n[grid]'),
        "options must be a table",
    ),
    "two files for one image": (
        "sweep",
        lambda live: (live / "model-x" / "001.png").write_bytes((live / "model-x" / "1.png").read_bytes()),
        "are both prompt 1 sample 0",
    ),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_fuzz_regression(inputs, name):
    from selfcheck.trials.fuzz import _error, judge, tree_hashes
    from selfcheck.trials.fuzz_run import run_inprocess
    from selfcheck.trials.fuzz_targets import COMMANDS, reset_live

    command, edit, fragment = REGRESSIONS[name]
    live = inputs / "live"
    reset_live(inputs / "pristine", live)
    edit(live)
    before = tree_hashes(live)
    o = run_inprocess(COMMANDS[command](live, inputs / "out" / name, inputs / "cache"), timeout=120)
    assert judge(o, "error", (fragment,), before, tree_hashes(live)) == [], o.stderr[-2000:]
    assert o.code == 2 and fragment in _error(o.stderr)


@pytest.mark.parametrize(
    "width, height, fragment",
    [(100_000, 100_000, "too many pixels"), (12_000, 12_000, "too many pixels"), (64, 64, "cannot read image")],
)
def test_load_rgb_refuses_bombs_and_truncation(tmp_path, width, height, fragment):
    from bench.metrics.preprocess import load_rgb
    from selfcheck.trials.fuzz_media import _png_with_size

    path = tmp_path / "x.png"
    path.write_bytes(_png_with_size(width, height))
    with pytest.raises(ValueError, match=fragment):
        load_rgb(path)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_load_rgb_converts_modes(tmp_path, mode):
    from bench.metrics.preprocess import load_rgb

    im = Image.fromarray(np.full((8, 8, 3), 200, np.uint8))
    im = Image.fromarray(np.full((8, 8), 40000, np.uint16)) if mode == "I;16" else im.convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    im.save(path)
    arr, converted = load_rgb(path)
    assert arr.shape == (8, 8, 3) and arr.dtype == np.uint8 and converted == mode


@pytest.mark.parametrize(
    "name", sorted(__import__("selfcheck.trials.fuzz_mutations", fromlist=["SPEC_HOSTILE"]).SPEC_HOSTILE)
)
def test_hostile_spec_mutations_are_refused_writing_nothing(inputs, name):
    """The fuzz trial's hostile-spec mutations, each once: exit 2, one line naming it, no file changed."""
    import random

    from selfcheck.trials.fuzz import judge, tree_hashes
    from selfcheck.trials.fuzz_mutations import SPEC_HOSTILE
    from selfcheck.trials.fuzz_run import run_inprocess
    from selfcheck.trials.fuzz_targets import COMMANDS, reset_live

    live = inputs / "live"
    reset_live(inputs / "pristine", live)
    m = SPEC_HOSTILE[name](live / "spec.toml", random.Random(0))
    before = tree_hashes(live)
    o = run_inprocess(COMMANDS["sweep"](live, inputs / "out" / name, inputs / "cache"), timeout=120)
    assert judge(o, m.expect, m.mentions, before, tree_hashes(live)) == [], o.stderr[-2000:]
    assert o.code == 2 and not (inputs.parent / "escape").exists()
