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

import re
import secrets
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from common.files import read_json, staged_folder, write_json_atomic
from common.version import __version__

from .contract import DEFAULT_CONTROL_THRESHOLD, DEFAULT_FAST_ANSWER_MS
from .controls import DegradeSettings, Item
from .image_copies import ImageCopies
from .participants import setup as setup_participants
from .plan import PlannedTask, PlanSettings, assignment, items_for, plan
from .platforms import Platform, from_record
from .protocols import Protocol, get_protocol, wording
from .sequential_deal import sequential_record
from .serving import ENCODING
from .sources import StudySources, study_sources
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
    meta = read_json(path, "restore it from a backup or recreate the study")
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
    data = read_json(path, "invite links cannot be shown")
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


@dataclass(frozen=True)
class _Design:
    """What a study will be, decided before anything is written: its settings and protocol, its
    name and id, the sources, the rated items and the planned tasks."""

    s: StudySettings
    protocol: Protocol
    name: str
    id: str
    sources: StudySources
    items: dict[str, Item]
    planned: list[PlannedTask]


def create_study(out: str | Path, s: StudySettings) -> Study:
    """Build the study directory. Refuses an existing non-empty `out`; builds in a staging folder
    beside it, published whole (common.files.staged_folder), so a failure leaves nothing half-made.
    Along its seams: the sources (human_eval.sources) and the plan, the image copies
    (human_eval.image_copies) made as the tasks are, then the files (_write_study: the database,
    secrets.json, study.json)."""
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} already exists and is not empty; refusing to overwrite a study (choose a new --out)")
    d = _design(s, out.name)
    with staged_folder(out) as folder:
        (folder / "images").mkdir()
        copies = ImageCopies(folder / "images", out, s.plan.seed, s.degrade)
        tasks = [_task(d.protocol, p, copies) for p in d.planned]
        _write_study(folder, d, tasks, copies)
    return load_study(out)


def _design(s: StudySettings, default_name: str) -> _Design:
    protocol = get_protocol(s.protocol)
    sources = study_sources(s.a, s.b, s.prompts, s.images_per_set or protocol.images_per_set)
    items = items_for(protocol, sources.recs_a, sources.recs_b)
    planned = plan(protocol, items, s.plan)
    study_id = secrets.token_hex(8)  # the study's identity: ratings are keyed by name@id (study_key)
    return _Design(s, protocol, s.name or default_name, study_id, sources, items, planned)


def _task(protocol: Protocol, p: PlannedTask, copies: ImageCopies) -> Task:
    """A planned task as the database keeps it: its images by the ids of their copies."""
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
        images_a=tuple(copies.image_id(x, False, it.model_a) for x in it.paths_a),
        images_b=tuple(copies.image_id(x, it.degrade_b, it.model_b) for x in it.paths_b),
        is_control=it.is_control,
        control_kind=it.control_kind,
        expected=it.expected,
    )


def _write_study(folder: Path, d: _Design, tasks: list[Task], copies: ImageCopies) -> None:
    """The tokens, the database (tasks and settings), secrets.json and study.json, into `folder`."""
    s = d.s
    tokens = {"admin": new_token(), "raters": {r: new_token() for r in sorted({t.rater for t in tasks})}}
    if s.platform is not None:  # the crowd's one public link (human_eval.participants)
        tokens["entry"] = new_token()
    db = s.db or DEFAULT_DB
    if not s.db:  # ratings and token hashes: owner-only, like secrets.json (SQLite gives its
        (folder / db).touch(mode=0o600)  # -wal / -shm files the database file's permissions)
    settings = _settings(d)
    store = Store(db if s.db else folder / db, study_key(d.name, d.id))
    store.create(s.protocol, tokens["admin"], tokens["raters"], tasks, __version__, settings)
    if s.platform is not None:
        setup_participants(store, tokens["entry"])
    store.close()
    write_secrets(folder, tokens)
    write_json_atomic(folder / "study.json", _study_record(d, settings, db, tasks, len(tokens["raters"]), copies))


def _settings(d: _Design) -> dict:
    """The study's settings as the database and study.json record them."""
    s = d.s
    settings = {
        "control_threshold": s.control_threshold,
        "fast_answer_ms": s.fast_answer_ms,
        "plan": asdict(s.plan) | resolved(d.protocol, s.plan),
        "degrade": asdict(s.degrade),
        "images_per_set": s.images_per_set or d.protocol.images_per_set,
    } | _platform(s)
    if s.plan.sequential is not None:  # the stopping plan as fixed before the first rating (human_eval.sequential)
        settings["plan"]["sequential"] = sequential_record(d.protocol, s.plan, d.planned)
    # who made what: in the database too (reports' labels)
    settings["study"] = {"name": d.name, "id": d.id, "models": _models(d)}
    return settings


def _platform(s: StudySettings) -> dict:
    return {"platform": s.platform.record()} if s.platform is not None else {}


def _models(d: _Design) -> dict:
    """Each source as resolved (absolute path): a model is its source, whatever its folder is called."""
    return d.sources.models(next(iter(d.items.values())).prompt_id)


def _study_record(d: _Design, settings: dict, db: str, tasks: list[Task], raters: int, copies: ImageCopies) -> dict:
    """study.json."""
    order = list(dict.fromkeys(it.prompt_id for it in d.items.values()))
    rated = [pid for pid in order if pid in {t.prompt_id for t in tasks if not t.is_control}]
    return {
        "format": STUDY_FORMAT,
        "name": d.name,
        "id": d.id,
        "protocol": d.s.protocol,
        "title": d.protocol.title,
        **_platform(d.s),
        "wording": wording(d.protocol),
        "models": _models(d),
        "prompts": {
            "spec": d.s.prompts,
            "prompt_set": d.sources.prompt_set,
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
            "raters": raters,
            "evaluations": assignment(d.protocol, d.items, d.s.plan),
        },  # category (or "all") -> its raters
        "images": copies.images,
        "serving": {"encoding": asdict(ENCODING), "served_bytes": copies.served_bytes()},
    }
