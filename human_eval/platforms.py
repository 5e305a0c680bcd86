"""Crowd platforms a study recruits raters from (issue 30 item 3): which ids the platform puts in
the study link, where a participant goes when done, what a bonus is worth and when the platform
allows a payment to be rejected. A leaf: no database, no Streamlit (human_eval.participants binds
participants to rater slots, human_eval.crowd_page serves them, human_eval.payments pays them).

    prolific   PROLIFIC_PID, STUDY_ID, SESSION_ID as URL query parameters (Prolific's "I'll use URL
               parameters"); back to https://app.prolific.com/submissions/complete?cc=CODE;
               a payment may be rejected only after two failed attention checks (Prolific's
               attention check policy: https://researcher-help.prolific.com/en/article/fb63bb).
    external   any platform (Amazon Mechanical Turk closes on 30 September 2026): the id parameters,
               the completion URL (with {code}) and the rejection rule are given at creation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

PLATFORMS = ("prolific", "external")
OUTCOMES = ("completed", "screened_out")
PROLIFIC_PARAMS = ("PROLIFIC_PID", "SESSION_ID", "STUDY_ID")  # participant, session, the rest recorded
PROLIFIC_COMPLETION = "https://app.prolific.com/submissions/complete?cc={code}"
PROLIFIC_MIN_FAILED_CHECKS = 2
RESERVED_PARAMS = ("t", "e", "admin")  # the app's own link parameters (invite, entry, admin)

_PARAM = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # Prolific's ids are 24 hex digits; other platforms' similar
_CODE = re.compile(r"[A-Za-z0-9_-]{1,40}")


def _check_param(name: str) -> str:
    if not isinstance(name, str) or not _PARAM.fullmatch(name) or name in RESERVED_PARAMS:
        raise ValueError(
            f"id parameter {name!r} must be a letter then letters, digits or _ (at most 40), "
            f"and not one of the app's own: {', '.join(RESERVED_PARAMS)}"
        )
    return name


def _check_code(what: str, code: str | None) -> None:
    if code is not None and not (isinstance(code, str) and _CODE.fullmatch(code)):
        raise ValueError(f"{what} {code!r} must be 1-40 letters, digits, - or _ (as the platform shows it)")


def parse_amount(text: str) -> int:
    """An amount in the study's currency ('0.05') as cents; refuses more than two decimals or a negative."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(
            f"an amount must be a non-negative number with at most two decimals (e.g. 0.05), got {text!r}"
        )
    return int(value * 100)


def amount_text(cents: int) -> str:
    """Cents as the platform's decimal amount: 125 -> '1.25' (Prolific: '1.50 for £1.50')."""
    return f"{cents // 100}.{cents % 100:02d}"


@dataclass(frozen=True)
class Platform:
    kind: str
    participant_param: str  # the participant's id on the platform: the one a bonus is paid to
    session_param: str  # this participation's id: binds the participant to its rater slot (see participants.py)
    other_params: tuple[str, ...] = ()  # recorded with the participant, not checked
    completion_url: str = PROLIFIC_COMPLETION  # with {code}
    completed_code: str = ""
    screened_out_code: str | None = None  # None: a participant who cannot take part is asked to return the study
    bonus_cents_per_task: int = 0  # paid per fully answered task (controls included) by `study export --payments`
    min_failed_checks: int = PROLIFIC_MIN_FAILED_CHECKS  # failed checks before the platform allows a rejection
    params: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        if self.kind not in PLATFORMS:
            raise ValueError(f"unknown platform {self.kind!r}; choose from {', '.join(PLATFORMS)}")
        params = (self.participant_param, self.session_param, *self.other_params)
        for p in params:
            _check_param(p)
        if len(set(params)) != len(params):
            raise ValueError(f"id parameters must be distinct, got {', '.join(params)}")
        object.__setattr__(self, "params", params)
        if not self.completed_code:
            raise ValueError(
                "a platform study needs its completion code (--completion-code, as the platform shows it)"
            )
        _check_code("completion code", self.completed_code)
        _check_code("screened-out code", self.screened_out_code)
        url = self.completion_url
        if not (isinstance(url, str) and re.fullmatch(r"https?://[^\s<>\"'{}]+\{code\}[^\s<>\"'{}]*", url)):
            raise ValueError(
                f"the completion URL must be an http(s) URL with {{code}} once where the code goes, got {url!r}"
            )
        if not (isinstance(self.bonus_cents_per_task, int) and self.bonus_cents_per_task >= 0):
            raise ValueError(f"the bonus per task must be a non-negative amount, got {self.bonus_cents_per_task!r}")
        if not (isinstance(self.min_failed_checks, int) and self.min_failed_checks >= 1):
            raise ValueError(
                f"failed checks before a rejection must be an integer >= 1, got {self.min_failed_checks!r}"
            )
        if self.kind == "prolific" and (
            params != PROLIFIC_PARAMS
            or url != PROLIFIC_COMPLETION
            or self.min_failed_checks != PROLIFIC_MIN_FAILED_CHECKS
        ):
            raise ValueError(
                "Prolific's id parameters, completion URL and rejection rule are fixed; use --platform external to change them"
            )

    def read_ids(self, query: Mapping[str, str]) -> dict[str, str]:
        """The platform's ids from a request's query parameters; a missing or malformed one is one line naming it."""
        ids = {}
        for p in self.params:
            value = query.get(p)
            if not value:
                raise ValueError(
                    f"This link lacks {p}. Please open the study from {self.label}'s study page "
                    f"(its link adds {', '.join(self.params)})."
                )
            if not _ID.fullmatch(value):
                raise ValueError(
                    f"This link's {p} is not an id (1-64 letters, digits, - or _). "
                    f"Please open the study from {self.label}'s study page."
                )
            ids[p] = value
        return ids

    @property
    def label(self) -> str:
        return "Prolific" if self.kind == "prolific" else "the platform"

    def finish_url(self, outcome: str) -> str | None:
        """Where a participant goes at `outcome` (completed / screened_out); None: no code for it."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; choose from {', '.join(OUTCOMES)}")
        code = self.completed_code if outcome == "completed" else self.screened_out_code
        return None if code is None else self.completion_url.replace("{code}", code)

    def entry_link(self, base: str, entry_token: str) -> str:
        """The one study link given to the platform. Prolific fills its {{%NAME%}} placeholders; an
        external platform is shown NAME=<NAME> where its own placeholder (or appended id) goes."""
        fill = (lambda p: f"{{{{%{p}%}}}}") if self.kind == "prolific" else (lambda p: f"<{p}>")
        return f"{base.rstrip('/')}/?e={entry_token}&" + "&".join(f"{p}={fill(p)}" for p in self.params)

    def record(self) -> dict:
        """What study.json and the database record (settings.platform)."""
        return {
            "kind": self.kind,
            "participant_param": self.participant_param,
            "session_param": self.session_param,
            "other_params": list(self.other_params),
            "completion_url": self.completion_url,
            "completed_code": self.completed_code,
            "screened_out_code": self.screened_out_code,
            "bonus_per_task": amount_text(self.bonus_cents_per_task),
            "min_failed_checks": self.min_failed_checks,
        }


def from_record(record: dict) -> Platform:
    """A Platform from study.json's 'platform' (as record() wrote it); anything else raises ValueError."""
    keys = {
        "kind",
        "participant_param",
        "session_param",
        "other_params",
        "completion_url",
        "completed_code",
        "screened_out_code",
        "bonus_per_task",
        "min_failed_checks",
    }
    if not isinstance(record, dict) or set(record) != keys:
        raise ValueError(f"'platform' must hold exactly {', '.join(sorted(keys))}")
    return Platform(
        kind=record["kind"],
        participant_param=record["participant_param"],
        session_param=record["session_param"],
        other_params=tuple(record["other_params"]),
        completion_url=record["completion_url"],
        completed_code=record["completed_code"],
        screened_out_code=record["screened_out_code"],
        bonus_cents_per_task=parse_amount(record["bonus_per_task"]),
        min_failed_checks=record["min_failed_checks"],
    )


def make_platform(
    kind: str,
    completed_code: str | None,
    screened_out_code: str | None = None,
    bonus_per_task: str = "0",
    id_params: str | None = None,
    completion_url: str | None = None,
    reject_after: int | None = None,
) -> Platform:
    """A platform from `study create`'s options: prolific takes its fixed ids, URL and rule; external
    needs --id-params PARTICIPANT,SESSION[,OTHER...] and --completion-url (with {code})."""
    if kind not in PLATFORMS:
        raise ValueError(f"unknown platform {kind!r}; choose from {', '.join(PLATFORMS)}")
    common = dict(
        completed_code=completed_code or "",
        screened_out_code=screened_out_code,
        bonus_cents_per_task=parse_amount(bonus_per_task),
    )
    if kind == "prolific":
        given = [
            flag
            for flag, v in (
                ("--id-params", id_params),
                ("--completion-url", completion_url),
                ("--reject-after", reject_after),
            )
            if v is not None
        ]
        if given:
            raise ValueError(f"{given[0]} is fixed by Prolific; it applies to --platform external only")
        return Platform("prolific", *PROLIFIC_PARAMS[:2], other_params=PROLIFIC_PARAMS[2:], **common)
    if not id_params or not completion_url:
        raise ValueError(
            "--platform external needs --id-params PARTICIPANT,SESSION[,OTHER...] and --completion-url URL (with {code})"
        )
    params = tuple(p.strip() for p in id_params.split(","))
    if len(params) < 2:
        raise ValueError(
            f"--id-params needs the participant's and the session's parameter (e.g. workerId,assignmentId), got {id_params!r}"
        )
    return Platform(
        "external",
        params[0],
        params[1],
        other_params=params[2:],
        completion_url=completion_url,
        min_failed_checks=PROLIFIC_MIN_FAILED_CHECKS if reject_after is None else reject_after,
        **common,
    )
