"""The table of ratios (terminal) and perf.md (README-ready markdown) from a perf.json document."""

from __future__ import annotations

from .results import fmt_value


def _rows(doc: dict) -> list[tuple[str, str, str, str, str]]:
    out = []
    for name, sec in doc["sections"].items():
        if sec.get("skipped"):
            out.append((name, f"skipped: {sec['skipped']}", "", "", ""))
        for r in sec["rows"]:
            met = "" if r["met"] is None else ("met" if r["met"] else "NOT MET")
            out.append((name, r["label"], fmt_value(r["value"], r["unit"]), r["target"] or "", met))
    return out


def machine_line(m: dict) -> str:
    return (
        f"{m['cpu_model']}, {m['cores']} cores, torch {m['torch_version']} ({m['torch_threads']} threads), "
        f"imagen-bench {m['package_version']}, python {m['python']}, load average {m['load_average_1min']} at start"
    )


def render_table(doc: dict) -> str:
    header = ("section", "measure", "value", "target", "")
    rows = [header, *_rows(doc)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"machine: {machine_line(doc['machine'])}", ""]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for name, sec in doc["sections"].items():
        for n in sec["notes"]:
            lines.append(f"[{name}] {n}")
    s = doc["summary"]
    lines.append(
        f"targets: {s['met']} met, {s['not_met']} not met"
        + (" (--quick: smoke sizes, not the benchmark)" if doc["quick"] else "")
    )
    return "\n".join(lines)


def render_markdown(doc: dict) -> str:
    lines = [
        f"Measured {doc['created']} with `{doc['command'].strip()}`"
        + (" (--quick smoke sizes)" if doc["quick"] else ""),
        "",
        f"Machine: {machine_line(doc['machine'])}.",
        "",
        "| section | measure | value | target | |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {' | '.join(c.replace('|', '/') for c in r)} |" for r in _rows(doc)]
    notes = [(name, n) for name, sec in doc["sections"].items() for n in sec["notes"]]
    if notes:
        lines += ["", *[f"- {name}: {n}" for name, n in notes]]
    return "\n".join(lines) + "\n"
