"""The run folder on disk (contract 1, docs/ARCHITECTURE.md): atomic writes, append-only shard
records, resume checks.

Each rank appends one JSON line per finished image to shards/images-rank<R>.jsonl *after* the
image file is in place (temp + rename), so an image counts as done only when its file exists and
its record (with sha256) does; a kill between the two redoes that one image, a torn last line is
ignored. Rank 0 merges all shard records into manifest.parquet. A resumed run first removes the
temp files of writes a kill interrupted; a folder whose initialisation a kill interrupted (run.json
but no spec.toml yet) is initialised again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import socket
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch

from common.allocator import setting as malloc_setting
from common.blas import setting as blas_setting
from common.files import (
    python_process_alive,
    read_json,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
    write_parquet_atomic,
)
from common.runs import PROMPT_REF_COLUMNS, PromptRef
from common.version import __version__
from imagen.checkpoint import config_diff
from imagen.device import cpu_capability, cpu_native_bf16

LOCK_FILE = ".lock"  # held (flock) by the sweep using the folder; its text names the holder
MANIFEST_COLUMNS = ["cell_id", "model", *PROMPT_REF_COLUMNS, "seed", "path", "sha256", "width", "height"]


class RunStore:
    def __init__(self, root: Path, rank: int = 0):
        self.root, self.rank = Path(root), rank

    # -- creation / resume checks -------------------------------------------------------------
    def init(self, spec_bytes: bytes, spec_sha256: str, models: dict[str, dict], wait: bool = False) -> bool:
        """Rank 0: create the folder or check that it belongs to this spec, holding the folder's lock
        from here to `unlock()` (refused, or with `wait` waited for, while another sweep holds it).
        Returns True when resuming. A spec that differs only in its [[metrics]] is adopted (the
        images are kept and rescored); any other difference is refused, naming it."""
        spec_file, run_json = self.root / "spec.toml", self.root / "run.json"
        self.claim(wait)
        if spec_file.exists():
            old = spec_file.read_bytes()
            if old != spec_bytes and _generation(old) != _generation(spec_bytes):
                raise ValueError(
                    f"{self.root} holds a run of a different spec; refusing to mix them. "
                    f"Differences: {'; '.join(_spec_diff(old, spec_bytes)) or 'formatting/comments only'}. "
                    "Use a new --out for the new spec (nothing was changed)."
                )
            recorded = _run_record(run_json).get("models", {}) if run_json.is_file() else {}
            diff = config_diff(recorded, json.loads(json.dumps(models, default=str)))
            if diff:
                raise ValueError(
                    f"{self.root} was made with other model weights/settings; refusing to mix them:\n  "
                    + "\n  ".join(d.replace("checkpoint has", "run has").replace("asked for", "now") for d in diff)
                    + "\nUse a new --out."
                )
            self.remove_temp_files()
            if old != spec_bytes:
                self._adopt_metrics(old, spec_bytes, spec_sha256)
            return True
        self.remove_temp_files()  # of an initialisation a kill interrupted

        write_json_atomic(
            run_json,
            {
                "package_version": __version__,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "spec_sha256": spec_sha256,
                "machine": {
                    "hostname": socket.gethostname(),
                    "platform": platform.platform(),
                    "processor": platform.machine(),
                    "cpus": os.cpu_count(),
                    "cpu_capability": cpu_capability(),
                    "cpu_native_bf16": cpu_native_bf16()[1],
                    "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                    "malloc": malloc_setting(),
                    "blas": blas_setting(),
                },
                "torch_version": torch.__version__,
                "models": models,
            },
        )
        write_bytes_atomic(spec_file, spec_bytes)  # last: its presence marks a complete initialisation
        return False

    def _adopt_metrics(self, old: bytes, new: bytes, new_sha256: str) -> None:
        """The spec changed only in its [[metrics]] (images belong to the generation settings, scores
        to the metric settings): keep every image, set the old spec aside in spec_history/ (nothing a
        user made is lost), record the new one; the scoring step then computes what its cache lacks."""
        history = self.root / "spec_history"
        history.mkdir(exist_ok=True)
        write_bytes_atomic(history / f"spec-{hashlib.sha256(old).hexdigest()[:12]}.toml", old)
        record = _run_record(self.root / "run.json")
        record.setdefault("spec_history", []).append(
            {"spec_sha256": record.get("spec_sha256"), "replaced": datetime.now(UTC).isoformat(timespec="seconds")}
        )
        write_json_atomic(self.root / "run.json", {**record, "spec_sha256": new_sha256})
        write_bytes_atomic(self.root / "spec.toml", new)

    def claim(self, wait: bool = False) -> None:
        """Rank 0, first thing: refuse a folder that is not a run folder, create it if missing and take
        its lock (so the sweep started first is the one that runs, whatever its start-up costs)."""
        if getattr(self, "_lock_fd", None) is not None:
            return
        if not (self.root / "spec.toml").exists():
            if self.root.exists() and not _interrupted_init(self.root) and any(self.root.iterdir()):
                raise ValueError(
                    f"{self.root} exists and is not a run folder (no spec.toml); choose another --out, nothing was overwritten"
                )
            self._created = not self.root.exists()
            self.root.mkdir(parents=True, exist_ok=True)
        self.lock(wait)

    def lock(self, wait: bool = False) -> None:
        """Take RUN/.lock (an exclusive flock, released by unlock() or when the process ends, a kill
        included). One sweep per run folder; the ranks of one torchrun sweep share rank 0's lock."""
        if getattr(self, "_lock_fd", None) is not None:
            return  # already ours (a resume in the same process)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ValueError(
                f"{self.root} is in use by another sweep ({holder}); wait for it to finish, or rerun with --wait"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock; a folder this sweep created and never initialised (refused before any
        work: a bad spec, missing images) is removed again, so a refusal leaves nothing behind."""
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock
            self._lock_fd = None
            if getattr(self, "_created", False) and [p.name for p in self.root.iterdir()] == [LOCK_FILE]:
                (self.root / LOCK_FILE).unlink(missing_ok=True)
                try:
                    self.root.rmdir()
                except OSError:
                    pass

    def remove_temp_files(self) -> list[Path]:
        """Remove the temp files of writes a kill interrupted (the atomic writes leave `.NAME.PID.tmp`
        or `NAME.tmp` behind; nothing reads them). Rank 0 on resume, holding the lock, before any rank
        writes; a `.NAME.PID.tmp` whose writer is still alive is left alone."""
        stale = sorted(p for p in self.root.rglob("*.tmp") if p.is_file() and not _writer_alive(p))
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    # -- image records ------------------------------------------------------------------------
    def shard_file(self) -> Path:
        return self.root / "shards" / f"images-rank{self.rank}.jsonl"

    def records(self) -> dict[tuple, dict]:
        """Finished images from every shard file (any earlier world size): key -> record, kept only
        when the file exists with the recorded sha256."""
        out: dict[tuple, dict] = {}
        for f in sorted((self.root / "shards").glob("images-rank*.jsonl")):
            for line in f.read_text().splitlines():
                try:
                    rec = json.loads(line)
                    key = record_key(rec)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                    continue  # a line torn by a kill, or edited by hand: not a finished image (it is made again)
                if key in out:
                    continue
                if not (isinstance(rec.get("path"), str) and isinstance(rec.get("sha256"), str)):
                    continue
                path = self.root / rec["path"]
                if (
                    path.is_file()
                    and path.resolve().is_relative_to(self.root.resolve())
                    and sha256_file(path) == rec["sha256"]
                ):
                    out[key] = rec
        return out

    def inside(self, relpath: str | Path) -> Path:
        """RUN/relpath, refused unless it resolves to a place inside the run folder (the second line of
        defence behind the spec's name rule: nothing a spec says may write elsewhere)."""
        path = self.root / relpath
        root = self.root.resolve()
        if not path.resolve().is_relative_to(root):
            raise ValueError(f"refusing to write {path}: it resolves outside the run folder {root}")
        return path

    def add_image(self, record: dict, data: bytes) -> None:
        write_bytes_atomic(self.inside(record["path"]), data)
        f = self.shard_file()
        f.parent.mkdir(parents=True, exist_ok=True)
        with open(f, "a+b") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() and (fh.seek(-1, os.SEEK_END), fh.read(1))[1] != b"\n":
                fh.write(b"\n")  # end a line torn by an earlier kill
            fh.write((json.dumps(record, sort_keys=True) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())

    # -- results ------------------------------------------------------------------------------
    def write_manifest(self, rows: list[dict]) -> pd.DataFrame:
        df = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
        df = df.astype({"prompt_id": str, "sample": "int64", "seed": "int64", "width": "int64", "height": "int64"})
        write_parquet_atomic(df, self.root / "manifest.parquet")
        return df

    def metric_cache(self, cell_id: str, label: str) -> Path:
        return self.inside(Path("metric_cache") / cell_id / f"{label}.json")


def _interrupted_init(root: Path) -> bool:
    """A folder that `init` began but a kill stopped before spec.toml (written last) was in place:
    only run.json, the lock and/or temp files. Initialising it again is safe: it holds no results."""
    names = [p.name for p in root.iterdir()]
    return bool(names) and all(n in ("run.json", LOCK_FILE) or n.endswith(".tmp") for n in names)


def _run_record(path: Path) -> dict:
    """RUN/run.json as a dict, or one line naming the file and what is wrong with it."""
    data = read_json(path, "it was edited or damaged: restore it or use a new --out")
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
        raise ValueError(f"{path} is not a run record (an object with 'models'); restore it or use a new --out")
    return data


def _writer_alive(tmp: Path) -> bool:
    """True when `tmp` is named `.NAME.PID.tmp` and PID (not this process) is a running Python process
    here: the suite's writers are Python; a reused PID of anything else does not keep a torn file."""
    parts = tmp.name.split(".")
    if len(parts) < 3 or not parts[-2].isdigit() or int(parts[-2]) == os.getpid():
        return False
    return python_process_alive(int(parts[-2]))  # without /proc: False, and the lock alone protects


def record_key(rec: dict) -> tuple:
    return (rec["cell_id"], *PromptRef.of(rec).key())


def _generation(spec: bytes) -> dict | None:
    """What makes the images: the spec's tables other than [[metrics]] (None: not valid TOML)."""
    try:
        return {k: v for k, v in tomllib.loads(spec.decode()).items() if k != "metrics"}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None


def _spec_diff(old: bytes, new: bytes) -> list[str]:
    try:
        a, b = tomllib.loads(old.decode()), tomllib.loads(new.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return ["the recorded spec.toml is not valid TOML"]

    def flat(d):  # lists of tables compared entry by entry
        return {
            k: (dict(enumerate(v)) if isinstance(v, list) and v and isinstance(v[0], dict) else v)
            for k, v in d.items()
        }

    return [
        d.replace("checkpoint has", "run has").replace("asked for", "new spec has")
        for d in config_diff(flat(a), flat(b))
    ]
