"""A rater in headless Chromium (Playwright, async API) working through their queue in the real
rating app: read the page state, answer the shown task, and count the answer as acknowledged only
when the page moves past it (the server stored it, then re-rendered). When the server goes away
mid-batch the rater waits for it to come back, reloads the invite link and continues."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

PROGRESS = re.compile(r"Batch (\d+) of (\d+): (\d+) of (\d+) done")
ALL_DONE = re.compile(r"All (\d+) tasks done")
OPTIONS = ("Yes", "Somewhat", "No")  # coco_alignment, as shown
VALUES = {"Yes": "yes", "Somewhat": "somewhat", "No": "no"}
IDLE_JS = """() => !document.querySelector('[data-stale="true"]')
                  && !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')"""


@dataclass
class RaterLog:
    rater: str
    attempts: dict[str, list[str]] = field(default_factory=dict)  # task id -> values submitted, in order
    acked: dict[str, str] = field(default_factory=dict)  # task id -> value the page acknowledged
    acked_after_reload: dict[str, str] = field(default_factory=dict)  # in flight at a kill, found stored after reload
    reoffered: list[str] = field(default_factory=list)  # acknowledged tasks the page offered again (lost answers)
    reloads: int = 0
    errors: list[str] = field(default_factory=list)
    finished: bool = False


@dataclass(frozen=True)
class PageState:
    index: int | None  # position of the shown task in the rater's queue; None when all are done
    start_batch: bool  # the break screen between batches ("Start batch N")


class Rater:
    def __init__(
        self,
        context,
        name: str,
        link: str,
        task_ids: list[str],
        batch_sizes: dict[int, int],
        server_generation: Callable[[], int],
        server_ready: Callable[[], Awaitable[None]],
        on_ack: Callable[[], None],
        timeout: float = 45.0,
    ):
        self.ctx, self.name, self.link, self.task_ids = context, name, link, task_ids
        self.batch_sizes, self.generation, self.ready, self.on_ack = (
            batch_sizes,
            server_generation,
            server_ready,
            on_ack,
        )
        self.timeout = timeout
        self.log = RaterLog(name)
        self.page = None

    def _index(self, batch: int, done: int) -> int:
        return sum(n for b, n in self.batch_sizes.items() if b < batch) + done

    async def _state(self, deadline: float, gen: int, moved_from: int | None = None) -> PageState | None:
        """The page's state once Streamlit has finished rendering it. With `moved_from` (the task
        just submitted): wait until the page shows another task; None when the app refused the
        submit (a question left unanswered), so nothing was stored."""
        while time.monotonic() < deadline and self.generation() == gen:
            try:
                text = await self.page.inner_text("body", timeout=2000)
                idle = await self.page.evaluate(IDLE_JS)
            except Exception:
                await asyncio.sleep(0.2)
                continue
            if idle and ALL_DONE.search(text):
                return PageState(None, False)
            m = PROGRESS.search(text)
            if idle and m:
                batch, done = int(m.group(1)), int(m.group(3))
                start = re.search(rf"Start batch {batch}\b", text) is not None
                index = self._index(batch, done)
                if moved_from is not None and index == moved_from:
                    if "Please answer every question" in text:
                        return None
                elif start or "Submit" in text:
                    return PageState(index, start)
            await asyncio.sleep(0.15)
        raise TimeoutError("page state not readable" if self.generation() == gen else "server restarted")

    async def _reload(self) -> None:
        await self.ready()
        self.log.reloads += 1
        await self.page.goto(self.link, timeout=60_000)

    async def run(self) -> RaterLog:
        self.page = await self.ctx.new_page()
        await self.ready()
        await self.page.goto(self.link, timeout=60_000)
        in_flight: str | None = None  # task submitted but not yet seen acknowledged
        while True:
            gen = self.generation()
            try:
                state = await self._state(time.monotonic() + self.timeout, gen)
                if in_flight is not None:  # the page after a reload: was the in-flight answer kept?
                    shown = self.task_ids[state.index] if state.index is not None else None
                    if shown != in_flight:
                        self.log.acked_after_reload[in_flight] = self.log.attempts[in_flight][-1]
                        self.on_ack()
                    in_flight = None
                if state.index is None:
                    self.log.finished = True
                    return self.log
                if (
                    self.task_ids[state.index] in self.log.acked
                    or self.task_ids[state.index] in self.log.acked_after_reload
                ):
                    self.log.reoffered.append(self.task_ids[state.index])
                if state.start_batch:
                    await self.page.get_by_role("button", name=re.compile(r"^Start batch \d+$")).click(timeout=10_000)
                    await asyncio.sleep(0.3)
                    continue
                task = self.task_ids[state.index]
                attempt = len(self.log.attempts.get(task, []))
                label = OPTIONS[(sum(map(ord, task)) + attempt) % len(OPTIONS)]  # a retry picks another answer
                await (
                    self.page.locator("[data-testid='stRadio']")
                    .nth(0)
                    .get_by_text(label, exact=True)
                    .click(timeout=10_000)
                )
                self.log.attempts.setdefault(task, []).append(VALUES[label])
                in_flight = task
                await self.page.get_by_role("button", name="Submit").click(timeout=10_000)
                after = await self._state(time.monotonic() + self.timeout, gen, moved_from=state.index)
                in_flight = None
                if after is not None:  # the page moved on: the server stored it and re-rendered
                    self.log.acked[task] = VALUES[label]
                    self.on_ack()
            except Exception as e:
                if self.generation() == gen:
                    self.log.errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}")
                await self._reload()
