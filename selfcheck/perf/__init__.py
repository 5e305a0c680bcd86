"""`imagen-bench perf`: speed of this package against its peers and the hardware, measured side by
side in one run on the machine it runs on (issue #7). One module per comparison:

    peak.py      matmul FLOP/s (fp32, bf16): the physical anchor
    sampling.py  our cascade's base stage vs diffusers / imagen-pytorch (peers/ runner scripts,
                 run in the separate benchmark venv .perf-venv) + achieved FLOP/s vs peak
    scoring.py   FID feature extraction vs torchmetrics' FrechetInceptionDistance path
    sweeps.py    guidance sweep cost, finished-sweep rerun, text encodings / reference stats once
    app.py       100K-answer report time and rating submit latency under 50 concurrent raters
    commands.py  the subcommand: sections, table, perf.json / perf.md
"""
