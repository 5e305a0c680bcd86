"""A study directory: what is rated, by whom, with which wording; the only images the app serves.

STUDY/
  study.json      protocol, models and sources, prompts, wording, settings (seed, batch size,
                  control share, threshold), package version, created, database, images' sha256
  images/         copies of the rated images (and degraded control copies) under opaque ids
  ratings.sqlite  the database (unless --db postgresql://...): raters (hashed tokens), tasks, answers
  secrets.json    invite and admin tokens in clear (mode 0600; for `imagen-bench rate` to print the
                  links; the database keeps only their hashes). Keep it private.
                  `imagen-bench study reissue STUDY --rater NAME | --admin` replaces one token (the
                  database hash first, then this file); nothing else in the study changes.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from common.files import python_process_alive

from .contract import DEFAULT_CONTROL_THRESHOLD, DEFAULT_FAST_ANSWER_MS
from .controls import DegradeSettings, degrade
from .participants import setup as setup_participants
from .plan import PlannedTask, PlanSettings, assignment, items_for, plan
from .platforms import Platform, from_record
from .protocols import get_protocol, wording
from .sequential_deal import sequential_record
from .serving import ENCODING, encode, padded_length
from .sources import by_prompt, distinct_models, load_prompts, parse_source, read_source
from .store import AccessDenied, Store, Task, is_postgres_url
from .tokens import match_token, new_token

STUDY_FORMAT = "imagen-bench-study/1"
DEFAULT_DB = "ratings.sqlite"
_IMAGE_ID = re.compile(r"[0-9a-f]{32}")
_STUDY_ID = re.compile(r"[0-9a-f]{16}")
RATINGS_TABLES = ("studies", "raters", "tasks", "answers")
_IMAGE_FILE = re.compile(r"[0-9a-f]{32}\.(?:png|jpe?g|webp)")


@dataclass(frozen=True)
class StudySettings:
    protocol: str
    a: str  # image source spec
    b: str | None
    prompts: str = "drawbench"
    name: str | None = None  # default: the study directory's name
    db: str | None = None  # PostgreSQL URL; default SQLite file in the study directory
    control_threshold: float = DEFAULT_CONTROL_THRESHOLD
    fast_answer_ms: int = DEFAULT_FAST_ANSWER_MS  # answers faster than this are flagged (admin page, report)
    images_per_set: int | None = None  # None: the protocol's (8 for DrawBench, the paper's sets; 1 for COCO)
    plan: PlanSettings = PlanSettings()
    degrade: DegradeSettings = DegradeSettings()
    platform: Platform | None = None  # a crowd platform's study: one public entry link (human_eval.participants)

    def __post_init__(self):
        proto = get_protocol(self.protocol)
        if proto.second_source == "required" and not self.b:
            raise ValueError(f"protocol {self.protocol} compares two sources: give --b")
        if proto.second_source == "none" and self.b:
            raise ValueError(f"protocol {self.protocol} rates one source: drop --b")
        self.plan.design_for(proto)  # raters per category with a design that has no categories: refused here
        if self.fast_answer_ms < 0:
            raise ValueError(f"fast answer time must be >= 0 ms, got {self.fast_answer_ms}")
        if self.images_per_set is not None and not 1 <= self.images_per_set <= 16:
            raise ValueError(f"images per set must be in [1, 16], got {self.images_per_set}")
        if not 0.0 <= self.control_threshold <= 1.0:
            raise ValueError(f"control threshold must be in [0, 1], got {self.control_threshold}")
        if self.db is not None and not is_postgres_url(self.db):
            raise ValueError(
                f"--db must be a postgresql:// URL (default: {DEFAULT_DB} in the study directory), got {self.db!r}"
            )


@dataclass(frozen=True)
class Study:
    """A loaded study.json; everything the app needs, nothing it could be tricked with."""

    root: Path
    name: str
    protocol: str
    db_url: str
    control_threshold: float
    images: dict[str, str]  # image id -> file name inside images/
    fast_answer_ms: float = DEFAULT_FAST_ANSWER_MS
    # every served image is padded to this many bytes (human_eval.serving); None: a study made
    # before uniform serving: its files are served as they are (sizes and JPEG tables may tell
    # degraded copies apart; the admin page says so: recreate it before a crowd sees it)
    served_bytes: int | None = None
    id: str | None = None  # random, made at creation; None: a study made before study ids (keyed by its name)
    platform: Platform | None = None  # raters come from this crowd platform through the entry link, not invite links

    @property
    def key(self) -> str:
        """The study's key in the database and in every ratings frame: name@id, so two studies named
        alike are never merged (a study made before ids keeps its name)."""
        return study_key(self.name, self.id)

    def store(self) -> Store:
        return Store(self.db_url, self.key)

    def image_path(self, image_id: str) -> Path:
        """The file of a study image, by id. Anything else (a path, an unknown id) is refused."""
        if not isinstance(image_id, str) or not _IMAGE_ID.fullmatch(image_id) or image_id not in self.images:
            raise AccessDenied(f"no image {image_id!r} in this study")
        images_dir = (self.root / "images").resolve()
        path = (images_dir / self.images[image_id]).resolve()
        if path.parent != images_dir or not path.is_file():
            raise AccessDenied(f"image {image_id!r} is missing from {images_dir}")
        return path


def study_key(name: str, study_id: str | None) -> str:
    return name if study_id is None else f"{name}@{study_id}"


def _strip_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}" if user else netloc))


def load_study(study_dir: str | Path) -> Study:
    root = Path(study_dir)
    path = root / "study.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{root} is not a study directory: study.json is missing (make one with `imagen-bench study create`)"
        )
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); restore it from a backup or recreate the study") from e
    if not isinstance(meta, dict) or meta.get("format") != STUDY_FORMAT:
        raise ValueError(
            f"{path}: format must be {STUDY_FORMAT!r}, got {meta.get('format') if isinstance(meta, dict) else type(meta).__name__!r}"
        )
    missing = sorted({"name", "protocol", "database", "images", "settings"} - set(meta))
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    get_protocol(meta["protocol"])
    images = meta["images"]
    if not isinstance(images, dict) or not all(
        isinstance(v, dict)
        and isinstance(v.get("file"), str)
        and _IMAGE_FILE.fullmatch(v["file"])
        and _IMAGE_ID.fullmatch(k)
        for k, v in images.items()
    ):
        raise ValueError(f"{path}: 'images' must map 32-hex ids to {{'file': '<id>.<png|jpg|webp>'}} entries")
    db = meta["database"]
    if not isinstance(db, str) or not (is_postgres_url(db) or re.fullmatch(r"[\w.-]+", db)):
        raise ValueError(f"{path}: 'database' must be a file name inside the study or a postgresql:// URL, got {db!r}")
    threshold = meta["settings"].get("control_threshold") if isinstance(meta["settings"], dict) else None
    if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"{path}: settings.control_threshold must be a number in [0, 1], got {threshold!r}")
    served = meta.get("serving", {}).get("served_bytes") if isinstance(meta.get("serving", {}), dict) else "?"
    if served is not None and not (isinstance(served, int) and served > 0):
        raise ValueError(f"{path}: serving.served_bytes must be a positive integer, got {served!r}")
    study_id = meta.get("id")
    if study_id is not None and not (isinstance(study_id, str) and _STUDY_ID.fullmatch(study_id)):
        raise ValueError(f"{path}: 'id' must be 16 hex digits (made at creation), got {study_id!r}")
    try:
        platform = None if meta.get("platform") is None else from_record(meta["platform"])
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{path}: 'platform': {e}") from None
    if not is_postgres_url(db):
        check_sqlite(root / db)
    return Study(
        root=root.resolve(),
        name=str(meta["name"]),
        protocol=meta["protocol"],
        db_url=db if is_postgres_url(db) else str(root.resolve() / db),
        control_threshold=float(threshold),
        images={k: v["file"] for k, v in images.items()},
        fast_answer_ms=float(meta["settings"].get("fast_answer_ms", DEFAULT_FAST_ANSWER_MS)),
        served_bytes=served,
        id=study_id,
        platform=platform,
    )


def check_sqlite(path: Path) -> None:
    """A study's SQLite ratings file must exist and hold the ratings tables; checked read-only
    before anything opens it for writing (SQLite would turn an empty file into a database)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"the ratings database {path} is missing (study.json names it); restore it from a backup"
        )
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{path} is not a readable ratings database ({e}); restore it from a backup") from None
    missing = sorted(set(RATINGS_TABLES) - tables)
    if missing:
        raise ValueError(f"{path} is not a ratings database: tables {missing} are missing; restore it from a backup")


def read_secrets(study_dir: str | Path) -> dict:
    """secrets.json: {"admin": token, "raters": {rater: token}}; anything else names the file."""
    path = Path(study_dir) / "secrets.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: invite links cannot be shown (tokens are stored only hashed in the database)"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); invite links cannot be shown") from None
    if not (
        isinstance(data, dict)
        and isinstance(data.get("admin"), str)
        and isinstance(data.get("raters"), dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in data["raters"].items())
    ):
        raise ValueError(
            f'{path} must hold {{"admin": TOKEN, "raters": {{RATER: TOKEN}}}}; invite links cannot be shown'
        )
    return data


def write_secrets(study_dir: str | Path, tokens: dict) -> None:
    """Write secrets.json atomically and owner-only (0600) from its first byte."""
    from common.files import write_json_atomic

    write_json_atomic(Path(study_dir) / "secrets.json", tokens, mode=0o600)


def stale_tokens(tokens: dict, hashes: tuple[str | None, dict[str, str]]) -> tuple[set[str], bool]:
    """(raters whose secrets.json token no longer matches the database's hash, whether the admin
    token is stale); `hashes` is Store.token_hashes(). A rater missing from secrets.json is stale."""
    admin_hash, rater_hashes = hashes
    stale = {r for r, h in rater_hashes.items() if match_token(tokens["raters"].get(r), {r: h}) != r}
    return stale, admin_hash is None or match_token(tokens["admin"], {"admin": admin_hash}) != "admin"


def reissue_token(study_dir: str | Path, rater: str | None) -> str:
    """Give one rater (or, with rater=None, the admin) a new token and return it. The old token
    stops working; tasks, answers and every other token stay as they are."""
    study = load_study(study_dir)
    tokens = read_secrets(study.root)  # refuse a missing / damaged secrets.json before changing anything
    store = study.store()
    try:
        known = sorted(store.token_hashes()[1])
        if rater is not None and rater not in known:
            raise ValueError(
                f"study {study.name!r} has no rater {rater!r}; its raters are: {', '.join(known) or '(none)'}"
            )
        token = new_token()
        # Database first, then secrets.json. The database decides who gets in, so a leaked token is
        # dead from this commit on. A crash before secrets.json is written leaves it holding the old
        # token: `study links` and `rate` see its hash no longer matches and say "run study reissue"
        # instead of printing a dead link, and rerunning reissue repairs it. (The other order could
        # crash leaving a leaked token still valid while secrets.json looks reissued.)
        if rater is None:
            store.replace_admin_token(token)
            tokens["admin"] = token
        else:
            store.replace_rater_token(rater, token)
            tokens["raters"][rater] = token
    finally:
        store.close()
    write_secrets(study.root, tokens)
    return token


def resolved(protocol, settings: PlanSettings) -> dict:
    """The plan's defaults as this study resolved them (recorded in study.json)."""
    design = settings.design_for(protocol)
    return {
        "design": design,
        "raters_per_category": (settings.raters_per_category or settings.raters) if design == "per_category" else None,
    }


DISK_ERRORS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
)  # the disk written to, never the source


def write_error(e: OSError, dst: Path, out: Path) -> OSError:
    """An error while writing an image's copy: a disk error names the copy and the study being made
    (shutil names its *source* on ENOSPC, which blamed the rated image for a full disk)."""
    if e.errno not in DISK_ERRORS:
        return e
    return OSError(e.errno, f"{os.strerror(e.errno)} (writing the study's image copies for {out})", str(dst))


def create_study(out: str | Path, s: StudySettings) -> Study:
    """Build the study directory. Refuses an existing non-empty `out`; builds in a temporary
    sibling and renames it into place, so a failure leaves nothing half-made."""
    from common.files import sha256_file, write_json_atomic
    from common.imagestore import open_image
    from common.version import __version__

    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} already exists and is not empty; refusing to overwrite a study (choose a new --out)")
    protocol = get_protocol(s.protocol)
    prompts, prompt_set = load_prompts(s.prompts)
    src_a = parse_source(s.a)
    src_b = parse_source(s.b) if s.b else None
    per_set = s.images_per_set or protocol.images_per_set
    recs_a = by_prompt(read_source(src_a, prompts, prompt_set), per_set, s.a)
    recs_b = by_prompt(read_source(src_b, prompts, prompt_set), per_set, s.b) if src_b else None
    if src_b is not None:
        recs_a, recs_b = distinct_models(src_a, recs_a, src_b, recs_b)
    items = items_for(protocol, recs_a, recs_b)
    planned = plan(protocol, items, s.plan)
    name = s.name or out.name
    study_id = secrets.token_hex(8)  # the study's identity: ratings are keyed by name@id (study_key)

    for stale in (
        out.parent.glob(f".{out.name}.creating-*") if out.parent.is_dir() else ()
    ):  # a killed create's half-made folder
        pid = stale.name.rsplit(".creating-", 1)[1].split("-")[0]
        if not (pid.isdigit() and python_process_alive(int(pid))):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = out.with_name(f".{out.name}.creating-{os.getpid()}-{secrets.token_hex(4)}")
    (tmp / "images").mkdir(parents=True)
    try:
        images: dict[str, dict] = {}
        copies: dict[tuple, str] = {}

        def image_id(path: Path, degraded: bool, model: str) -> str:
            """Each source image (and each degraded copy) is written once, by the one encoder every
            served image goes through (human_eval.serving); the control pool keeps every image to one
            task per rater (human_eval.plan)."""
            key = (path, degraded)
            if key not in copies:
                with open_image(path) as im:  # a corrupt / truncated / non-image file is refused here, naming it
                    data = encode(
                        degrade(path, seed=s.plan.seed + len(copies), settings=s.degrade) if degraded else im
                    )
                iid = secrets.token_hex(16)
                dst = tmp / "images" / f"{iid}.jpg"
                try:
                    dst.write_bytes(data)
                except OSError as e:
                    raise write_error(e, dst, out) from None
                images[iid] = {
                    "file": dst.name,
                    "sha256": sha256_file(dst),
                    "source": str(path),
                    "model": model,
                    "degraded": degraded,
                }
                copies[key] = iid
            return copies[key]

        def task(p: PlannedTask) -> Task:
            it = p.item
            return Task(
                task_id=secrets.token_hex(12),
                rater=p.rater,
                batch=p.batch,
                position=p.position,
                prompt_id=it.prompt_id,
                category=it.category,
                caption=it.caption,
                model_a=it.model_a,
                model_b=it.model_b,
                a_on_left=p.a_on_left if protocol.layout == "pair" else True,
                images_a=tuple(image_id(x, False, it.model_a) for x in it.paths_a),
                images_b=tuple(image_id(x, it.degrade_b, it.model_b) for x in it.paths_b),
                is_control=it.is_control,
                control_kind=it.control_kind,
                expected=it.expected,
            )

        tasks = [task(p) for p in planned]
        tokens = {"admin": new_token(), "raters": {r: new_token() for r in sorted({t.rater for t in tasks})}}
        if s.platform is not None:  # the crowd's one public link (human_eval.participants)
            tokens["entry"] = new_token()
            settings_platform = {"platform": s.platform.record()}
        else:
            settings_platform = {}
        db = s.db or DEFAULT_DB
        settings = {
            "control_threshold": s.control_threshold,
            "fast_answer_ms": s.fast_answer_ms,
            "plan": asdict(s.plan) | resolved(protocol, s.plan),
            "degrade": asdict(s.degrade),
            "images_per_set": per_set,
        } | settings_platform
        if s.plan.sequential is not None:  # the stopping plan as fixed before the first rating (human_eval.sequential)
            settings["plan"]["sequential"] = sequential_record(protocol, s.plan, planned)
        if not s.db:  # ratings and token hashes: owner-only, like secrets.json (SQLite gives its
            (tmp / db).touch(mode=0o600)  # -wal / -shm files the database file's permissions)
        first = next(iter(items.values()))
        # each source as resolved (absolute path): a model is its source, whatever its folder is called
        models = {
            side: {
                "source": f"{src.kind}:{src.path}" + (f"@{src.cell}" if src.cell else ""),
                "model": recs[first.prompt_id][0].model,
            }
            for side, src, recs in (("a", src_a, recs_a), ("b", src_b, recs_b))
            if src is not None
        }
        settings["study"] = {
            "name": name,
            "id": study_id,
            "models": models,
        }  # who made what: in the database too (reports' labels)
        store = Store(db if s.db else tmp / db, study_key(name, study_id))
        store.create(s.protocol, tokens["admin"], tokens["raters"], tasks, __version__, settings)
        if s.platform is not None:
            setup_participants(store, tokens["entry"])
        store.close()
        write_secrets(tmp, tokens)
        order = list(dict.fromkeys(it.prompt_id for it in items.values()))
        rated = [pid for pid in order if pid in {t.prompt_id for t in tasks if not t.is_control}]
        write_json_atomic(
            tmp / "study.json",
            {
                "format": STUDY_FORMAT,
                "name": name,
                "id": study_id,
                "protocol": s.protocol,
                "title": protocol.title,
                **settings_platform,
                "wording": wording(protocol),
                "models": models,
                "prompts": {
                    "spec": s.prompts,
                    "prompt_set": prompt_set,
                    "rated": rated,
                    "n": len(rated),
                    "control": [pid for pid in order if pid not in rated],
                },  # the pool: set aside, rated by no one
                "settings": settings,
                "database": _strip_password(db),
                "package_version": __version__,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "tasks": {
                    "total": len(tasks),
                    "controls": sum(t.is_control for t in tasks),
                    "raters": len(tokens["raters"]),
                    "evaluations": assignment(protocol, items, s.plan),
                },  # category (or "all") -> its raters
                "images": images,
                "serving": {
                    "encoding": asdict(ENCODING),
                    "served_bytes": padded_length(max(im.stat().st_size for im in (tmp / "images").iterdir())),
                },
            },
        )
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_study(out)
