"""`imagen-bench perf --quick`: every section runs end to end at smoke sizes and perf.json holds the
machine, each section's raw numbers (positive) and its targets. The peers need the benchmark venv
(`make perf-env`); without it the sampling section times only our stage and says why."""

from __future__ import annotations

import json
import os

import pytest

from imagen_bench.cli import main
from selfcheck.perf.sampling import find_peer_python


@pytest.mark.slow  # ~2-3 minutes on 2 busy cores (model sampling, Inception, sweeps)
def test_perf_quick_writes_every_section(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IMAGEN_BENCH_THREADS", os.environ.get("IMAGEN_BENCH_THREADS", "1"))
    peers = find_peer_python("")
    assert main(["perf", "--quick", "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    doc = json.loads((tmp_path / "perf.json").read_text())
    assert (tmp_path / "perf.md").read_text().startswith("Measured ")
    m = doc["machine"]
    assert (
        m["cpu_model"] and m["cores"] >= 1 and m["torch_version"] and m["torch_threads"] >= 1 and m["package_version"]
    )
    assert set(doc["sections"]) == {"peak", "sampling", "paper", "memory", "scoring", "setmetrics", "sweeps", "app"}
    for name, sec in doc["sections"].items():
        assert sec["skipped"] is None, (name, sec["skipped"])
        assert sec["rows"], name
        assert all(r["value"] >= 0 for r in sec["rows"]), name
    assert all(
        v["flops_per_second"] > 0 for v in doc["sections"]["peak"]["measurements"].values() if isinstance(v, dict)
    )
    impl = doc["sections"]["sampling"]["measurements"]["implementations"]
    assert impl["ours"]["images_per_second"] > 0 and impl["ours"]["flops_per_loop"] > 0
    if peers and peers.exists():
        for p in ("diffusers", "imagen-pytorch"):
            assert impl[p]["images_per_second"] > 0
            assert 0.9 <= impl[p]["param_ratio_to_ours"] <= 1.1, (p, impl[p]["params"])
    else:
        assert any("peers skipped" in n for n in doc["sections"]["sampling"]["notes"])
    paper = {k: v for k, v in doc["sections"]["paper"]["measurements"].items() if k != "section_seconds"}
    assert set(paper) == {"base", "sr256", "sr1024"}  # scaled down by --quick, each through the real denoiser call
    assert all(m["flop_per_call"] > 0 and m["modes"]["off"]["peak_share_percent"] > 0 for m in paper.values())
    memory = doc["sections"]["memory"]["measurements"]  # the malloc rules side by side, in fresh processes
    assert memory["system"]["rule"].startswith("system malloc") and len(memory["reuse"]["sha256"]) == 1
    assert memory["reuse"]["sha256"] == memory["system"]["sha256"]  # bit-identical results under either rule
    assert doc["sections"]["scoring"]["measurements"]["torchmetrics"]["images_per_second"] > 0
    sets = doc["sections"]["setmetrics"]["measurements"]  # each set metric in a fresh process: seconds and peak memory
    assert all(
        sets[j]["seconds"] > 0 and sets[j]["peak_rss_mib"] > 0 for j in ("fid", "kid", "prdc", "cmmd", "prdc_blocks")
    )
    sweeps = doc["sections"]["sweeps"]["measurements"]
    assert sweeps["cold"]["reference_stats"] == 1 and sweeps["rerun"]["images_generated"] == 0
    assert doc["sections"]["app"]["measurements"]["submit"]["p95_ms"] > 0
    assert doc["targets"] and all(t["met"] in (True, False) for t in doc["targets"])
    assert "targets:" in table and doc["machine"]["cpu_model"] in table
    # a second run never overwrites the first: it writes a timestamped pair
    assert (
        main(["perf", "--quick", "--only", "app", "--answers", "2000", "--raters", "2", "--out", str(tmp_path)]) == 0
    )
    assert len(list(tmp_path.glob("perf-*.json"))) == 1 and json.loads((tmp_path / "perf.json").read_text()) == doc


def test_perf_rejects_unknown_sections_and_settings(capsys):
    assert main(["perf", "--only", "peak,warp"]) == 2
    assert "unknown sections ['warp']" in capsys.readouterr().err
    from selfcheck.perf.peers._common import StageBench

    with pytest.raises(ValueError, match="unknown settings"):
        StageBench.from_json('{"batchsize": 8}')
