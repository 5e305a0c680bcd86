"""`imagen-bench study ...` (create, links, reissue, status, export) and `imagen-bench rate STUDY`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from pathlib import Path

from common.errors import UserError
from common.files import check_writable
from common.options import seed_int

from .confseq import METHODS as SEQUENCES
from .contract import DEFAULT_CONTROL_THRESHOLD, DEFAULT_FAST_ANSWER_MS
from .protocols import DESIGNS, PROTOCOLS

SERVER = Path(__file__).with_name("server.py")  # app.py behind human_eval.web_guard


def add_parser(sub, name: str, help_text: str) -> None:
    if name == "study":
        _add_study(sub.add_parser(name, help=help_text, description=help_text))
    elif name == "rate":
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("study", type=Path, help="study directory (from `imagen-bench study create`)")
        _add_address(p)
        p.set_defaults(func=cmd_rate)
    else:
        raise ValueError(f"human_eval.commands has no subcommand {name!r}; it provides: study, rate")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be an integer in 1-65535, got {text!r}")
    return port


def _add_address(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 to reach it from other machines)")
    p.add_argument("--port", type=_port, default=8501, help="TCP port, 1-65535 (default %(default)s)")
    p.add_argument(
        "--public-url", default=None, help="base URL raters use, if not http://HOST:PORT (e.g. behind a proxy)"
    )


def _add_study(p: argparse.ArgumentParser) -> None:
    ss = p.add_subparsers(dest="study_command", metavar="ACTION", required=True)
    c = ss.add_parser("create", help="build a study directory (images, tasks, invite tokens, database)")
    c.add_argument("--protocol", required=True, choices=list(PROTOCOLS))
    c.add_argument(
        "--a",
        default=None,
        help="model A images: run:DIR@CELL (cell id or KEY=VALUE,... of its settings) or folder:DIR (required unless --model)",
    )
    c.add_argument(
        "--b", default=None, help="model B (or, for coco_realism, the reference images): run:DIR[@CELL] or folder:DIR"
    )
    c.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="SOURCE",
        help="three or more models to rank, one --model each (instead of --a / --b): a sequential ranking, each rater's "
        "batch on the pair of models that informs the ranking most (docs/human_eval_sequential.md)",
    )
    c.add_argument("--out", required=True, type=Path, help="new study directory")
    c.add_argument(
        "--prompts",
        default="drawbench",
        help="drawbench, drawbench:CAT[,CAT...], coco[:KEY=VALUE,...], parti[:KEY=VALUE,...], geneval[:tags=A|B] or csv:PATH "
        "(default drawbench)",
    )
    c.add_argument("--raters", type=int, default=25, help="raters in the pool (default %(default)s)")
    c.add_argument(
        "--design",
        choices=list(DESIGNS),
        default=None,
        help="per_category: each category its own evaluation with its own raters (default for drawbench_sbs, "
        "the paper's); all_prompts: every rater rates every prompt (default for the COCO protocols)",
    )
    c.add_argument(
        "--raters-per-category",
        type=int,
        default=None,
        help="per_category: raters of the pool each category gets, dealt in rotation (default: all of --raters)",
    )
    c.add_argument("--batch-size", type=int, default=50)
    c.add_argument(
        "--control-share", type=float, default=0.1, help="share of each batch that are control tasks (default 0.1)"
    )
    c.add_argument(
        "--control-threshold",
        type=float,
        default=DEFAULT_CONTROL_THRESHOLD,
        help="raters below this control accuracy are flagged, recorded in study.json (default %(default)s)",
    )
    c.add_argument(
        "--fast-answer-ms",
        type=int,
        default=DEFAULT_FAST_ANSWER_MS,
        help="answers faster than this are flagged on the admin page and in reports (default %(default)s)",
    )
    c.add_argument(
        "--images-per-set",
        type=int,
        default=None,
        help="images per side, exactly (default: the protocol's: 8 for drawbench_sbs as in the paper, 1 for COCO); "
        "recorded in study.json",
    )
    c.add_argument("--seed", type=seed_int, default=0)
    c.add_argument("--name", default=None, help="study name in the database (default: the --out directory's name)")
    c.add_argument(
        "--db",
        default=None,
        help="postgresql://USER@HOST/DB (password via PGPASSWORD or ~/.pgpass); default SQLite in STUDY",
    )
    seq = c.add_argument_group(
        "sequential design (--design sequential: one batch per rater, the study stops by this plan, "
        "fixed at creation; docs/human_eval_sequential.md)"
    )
    seq.add_argument(
        "--alpha", type=float, default=None, help="1 - coverage of the interval at the stop (default 0.05)"
    )
    seq.add_argument(
        "--half-width", type=float, default=None, help="stop once the interval is this narrow each side (default 0.03)"
    )
    seq.add_argument("--look-every", type=int, default=None, help="counted batches between looks (default 1)")
    seq.add_argument("--sequence", choices=list(SEQUENCES), default=None, help="confidence sequence (default betting)")
    seq.add_argument("--question", default=None, help="the question the rule watches (default: the protocol's first)")
    _add_platform(c)
    c.set_defaults(func=cmd_create)
    for action, func, helptext in (
        ("links", cmd_links, "print the invite links and the admin link"),
        ("status", cmd_status, "progress and control accuracy per rater"),
    ):
        a = ss.add_parser(action, help=helptext)
        a.add_argument("study", type=Path)
        if action == "links":
            _add_address(a)
        a.set_defaults(func=func)
    r = ss.add_parser(
        "reissue", help="replace one rater's invite token (or the admin token); the old link stops working"
    )
    r.add_argument("study", type=Path)
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--rater", metavar="NAME", help="the rater whose invite link is replaced (e.g. r01)")
    who.add_argument("--admin", action="store_true", help="replace the admin token instead")
    _add_address(r)
    r.set_defaults(func=cmd_reissue)
    e = ss.add_parser("export", help="write every answer (export contract columns) to CSV or parquet")
    e.add_argument("study", type=Path)
    e.add_argument(
        "--out",
        required=True,
        type=Path,
        help="FILE.csv or FILE.parquet (never overwritten); with --payments the bonus CSV",
    )
    e.add_argument(
        "--payments",
        action="store_true",
        help="a crowd study's bonus CSV (participant id,amount: Prolific's bulk bonus format) for every answered task "
        "not paid before, + OUT.decisions.csv (payment and analysis decisions); docs/human_eval.md",
    )
    e.set_defaults(func=cmd_export)


def _add_platform(c: argparse.ArgumentParser) -> None:
    from .platforms import PLATFORMS

    g = c.add_argument_group(
        "crowd platform (raters come through one public link with the platform's ids; docs/human_eval.md)"
    )
    g.add_argument(
        "--platform",
        choices=list(PLATFORMS),
        default=None,
        help="prolific (PROLIFIC_PID, STUDY_ID, SESSION_ID; back to app.prolific.com) or external (--id-params, --completion-url)",
    )
    g.add_argument(
        "--completion-code",
        default=None,
        help="the platform's code for a completed submission (required with --platform)",
    )
    g.add_argument(
        "--screened-out-code",
        default=None,
        help="the platform's code for a participant turned away (every place taken)",
    )
    g.add_argument(
        "--bonus-per-task", default=None, help="bonus per answered task in the study's currency, e.g. 0.05 (default 0)"
    )
    g.add_argument(
        "--id-params",
        default=None,
        help="external: PARTICIPANT,SESSION[,OTHER...] query parameters, e.g. workerId,assignmentId,hitId",
    )
    g.add_argument(
        "--completion-url",
        default=None,
        help="external: where a participant goes when done, with {code} where the code goes",
    )
    g.add_argument(
        "--reject-after",
        type=int,
        default=None,
        help="external: failed checks before the platform allows a rejection (default 2)",
    )


def _platform(args):
    """The study's crowd platform from --platform and its options; the options are refused without it."""
    from .platforms import make_platform

    flags = ("completion_code", "screened_out_code", "bonus_per_task", "id_params", "completion_url", "reject_after")
    if args.platform is None:
        given = [f for f in flags if getattr(args, f) is not None]
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')} applies to --platform prolific|external only")
        return None
    return make_platform(
        args.platform,
        args.completion_code,
        args.screened_out_code,
        args.bonus_per_task or "0",
        args.id_params,
        args.completion_url,
        args.reject_after,
    )


def _sequential(args):
    """The stopping plan of --design sequential; its options are refused with any other design."""
    from .sequential import SequentialPlan

    flags = {
        "alpha": "alpha",
        "half_width": "half-width",
        "look_every": "look-every",
        "method": "sequence",
        "question": "question",
    }
    given = {
        field: getattr(args, flag.replace("-", "_"))
        for field, flag in flags.items()
        if getattr(args, flag.replace("-", "_")) is not None
    }
    if args.design != "sequential":
        if given:
            raise ValueError(f"--{flags[next(iter(given))]} applies to --design sequential only")
        return None
    return SequentialPlan(**given)


def _models(args) -> tuple[str, ...]:
    """The --model sources (three or more: a sequential ranking), or () for --a / --b; refused mixed."""
    if args.model is None:
        if args.a is None:
            raise ValueError("give the images to rate: --a (and --b), or --model three times or more to rank models")
        return ()
    if args.a is not None or args.b is not None:
        raise ValueError("--model replaces --a and --b: give every model with --model")
    if len(args.model) < 3:
        raise ValueError(f"--model takes three or more models to rank, got {len(args.model)}; two models: --a and --b")
    if args.design not in (None, "sequential"):
        raise ValueError(f"several models are ranked by --design sequential, got --design {args.design}")
    args.design = "sequential"
    return tuple(args.model)


def cmd_create(args) -> int:
    from .plan import PlanSettings
    from .study import StudySettings, create_study

    models = _models(args)
    settings = StudySettings(
        protocol=args.protocol,
        a=models[0] if models else args.a,
        b=models[1] if models else args.b,
        prompts=args.prompts,
        name=args.name,
        db=args.db,
        control_threshold=args.control_threshold,
        images_per_set=args.images_per_set,
        fast_answer_ms=args.fast_answer_ms,
        platform=_platform(args),
        plan=PlanSettings(
            raters=args.raters,
            batch_size=args.batch_size,
            control_share=args.control_share,
            seed=args.seed,
            design=args.design,
            raters_per_category=args.raters_per_category,
            sequential=_sequential(args),
        ),
    )
    check_writable(args.out)
    if models:
        from .ranking_study import create_ranking_study

        study = create_ranking_study(args.out, settings, models[2:])
    else:
        study = create_study(args.out, settings)
    meta = json.loads((study.root / "study.json").read_text())
    t = meta["tasks"]
    design = meta["settings"]["plan"]["design"]
    per = {len(r) for r in t["evaluations"].values()}
    how = (
        f"{len(t['evaluations'])} evaluations (one per category, {'/'.join(map(str, sorted(per)))} raters each)"
        if design == "per_category"
        else "every rater rates every prompt"
        if design == "all_prompts"
        else "one batch per rater, stopping by the plan in study.json (settings.plan.sequential)"
        if design == "sequential"
        else f"{len(meta['models'])} models ranked: one batch per rater on the pair chosen when they start (tasks "
        "dealt then), stopping by the plan in study.json (settings.plan.sequential)"
    )
    tasks = (
        f"{t['total']} tasks ({t['controls']} controls)"
        if "pairs" not in t
        else f"{sum(t['pairs'].values())} tasks in the deck of {len(t['pairs'])} pairs"
    )
    print(
        f"study {study.name}: {meta['prompts']['n']} prompts (+{len(meta['prompts']['control'])} set aside for controls), "
        f"{t['raters']} raters, {how}, {tasks}, {len(study.images)} images -> {study.root}"
    )
    print(f"serve it with: imagen-bench rate {args.out}")
    return 0


def links(study_dir: Path, base_url: str) -> tuple[dict[str, str | None], str | None]:
    """({rater: invite link}, admin link) for the database's raters; None where secrets.json's token
    no longer matches the database's hash (a dead link, e.g. after a crash inside `study reissue`)."""
    from .study import load_study, read_secrets, stale_tokens

    study = load_study(study_dir)
    tokens = read_secrets(study_dir)
    store = study.store()
    try:
        hashes = store.token_hashes()
    finally:
        store.close()
    stale, admin_stale = stale_tokens(tokens, hashes)
    base = base_url.rstrip("/")
    invites = {r: None if r in stale else f"{base}/?t={tokens['raters'][r]}" for r in sorted(hashes[1])}
    return invites, None if admin_stale else f"{base}/?admin={tokens['admin']}"


def entry_link(study_dir: Path, base_url: str) -> str | None:
    """A crowd study's one public link (secrets.json 'entry' with the platform's id parameters); None for an invite-link study."""
    from .study import load_study, read_secrets

    study = load_study(study_dir)
    if study.platform is None:
        return None
    token = read_secrets(study_dir).get("entry")
    if not isinstance(token, str):
        raise ValueError(f"{study_dir}/secrets.json has no 'entry' token: the platform link cannot be shown")
    return study.platform.entry_link(base_url, token)


ALL_INTERFACES = ("0.0.0.0", "::")  # --host values that listen everywhere and name no machine


def _link_host(host: str) -> str:
    """The host a rater's browser can reach: this machine's name for an all-interfaces address
    (http://0.0.0.0 is not an address a browser can open elsewhere); IPv6 literals in brackets."""
    name = socket.gethostname() if host in ALL_INTERFACES else host
    return f"[{name}]" if ":" in name else name


def _base_url(args) -> str:
    return args.public_url or f"http://{_link_host(args.host)}:{args.port}"


def _invite_line(study: Path, rater: str, url: str | None) -> str:
    return f"  {rater}  {url or f'link no longer valid: run imagen-bench study reissue {study} --rater {rater}'}"


def _admin_line(study: Path, url: str | None) -> str:
    return f"admin link (keep private): {url or f'no longer valid: run imagen-bench study reissue {study} --admin'}"


def _print_links(args) -> None:
    invites, admin = links(args.study, _base_url(args))
    entry = entry_link(args.study, _base_url(args))
    if args.host in ALL_INTERFACES and not args.public_url:
        print(
            f"the server listens on all interfaces ({args.host}); links name this machine, {socket.gethostname()} "
            "(give --public-url if raters reach it by another name)"
        )
    if entry is not None:  # a crowd study: participants come through the platform, never an invite link
        print(
            f"study link for the platform (its ids filled in by it; participants take rater slots in turn):\n  {entry}"
        )
    else:
        print("invite links (one per rater; each is a secret):")
        for rater, url in invites.items():
            print(_invite_line(args.study, rater, url))
    print(_admin_line(args.study, admin))


def cmd_links(args) -> int:
    _print_links(args)
    return 0


def cmd_reissue(args) -> int:
    from .study import reissue_token

    reissue_token(args.study, None if args.admin else args.rater)
    invites, admin = links(args.study, _base_url(args))
    if args.admin:
        print("new admin token; the old admin link no longer works.")
        print(_admin_line(args.study, admin))
    else:
        print(f"new invite link for {args.rater}; the old one no longer works (answers already given are kept):")
        print(_invite_line(args.study, args.rater, invites[args.rater]))
    return 0


def cmd_status(args) -> int:
    from .admin_page import rater_table
    from .export import answers_frame
    from .study import load_study

    study = load_study(args.study)
    store = study.store()
    table = rater_table(study, store, answers_frame(args.study))
    print(table.to_string(index=False))
    return 0


def cmd_export(args) -> int:
    from .export import write_answers

    check_writable(args.out, folder=False)
    if args.payments:
        return _export_payments(args)
    df = write_answers(args.study, args.out)
    print(f"{len(df)} answers -> {args.out} (+ {args.out}.meta.json)")
    return 0


def _export_payments(args) -> int:
    from .payments import export_payments

    number, decisions = export_payments(args.study, args.out)
    paid = [d for d in decisions if d.paid_now]
    print(
        f"payment export {number}: {len(paid)} participants, {sum(d.paid_now for d in decisions)} tasks -> {args.out} "
        f"(participant id,amount); decisions -> {args.out}.decisions.csv"
    )
    for d in decisions:
        print(
            f"  {d.participant} ({d.rater}): bonus {d.bonus}, payment {d.payment}, analysis {d.analysis}: {d.reason}"
        )
    return 0


def cmd_rate(args) -> int:
    from .serve_process import check_port_free, serve
    from .study import load_study

    load_study(args.study)
    check_port_free(args.host, args.port)
    _print_links(args)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(SERVER),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.showErrorDetails",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
    ]
    env = {**os.environ, "HUMAN_EVAL_STUDY": str(args.study.resolve())}
    served = serve(cmd, env)
    if served.stopped_by is not None:  # a service manager, `kill` or Ctrl-C: a clean stop, not a failure
        print(
            f"imagen-bench rate: stopped by {signal.Signals(served.stopped_by).name}; the rating server has ended "
            "(every submitted answer is saved)",
            file=sys.stderr,
        )
        return 0
    if served.code < 0:
        raise UserError(
            f"the rating server was ended by {signal.Signals(-served.code).name} from outside imagen-bench rate"
        )
    if served.code != 0:
        raise UserError(f"the rating server stopped with exit code {served.code}; its messages are above")
    return 0
