"""`imagen-bench trials load-pg` at CI size (issue 30 item 5): more rater threads than the server has
connections (120 raters, two tabs each, against PostgreSQL's 100) submit through the store; nothing
is lost or duplicated and the store never holds more than its pool. One connection per thread lost
9,850 of 20,000 answers at 200 raters ("too many clients"). Needs a server: HUMAN_EVAL_PG_URL
(.ci/pg-start prints one)."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from human_eval.pg_pool import POOL_SIZE
from selfcheck.trials import load_pg

URL = os.environ.get("HUMAN_EVAL_PG_URL")
pytestmark = pytest.mark.skipif(not URL, reason="HUMAN_EVAL_PG_URL not set: no PostgreSQL server to test against")


def test_more_raters_than_server_connections_lose_nothing(tmp_path):
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install -c constraints.txt '.[postgres]'")
    p = argparse.ArgumentParser()
    load_pg.add_arguments(p)
    code = load_pg.run(
        p.parse_args(["--db", URL, "--raters", "120", "--answers", "5", "--workdir", str(tmp_path / "wd")])
    )
    summary = json.loads((tmp_path / "wd" / "summary.json").read_text())
    assert code == 0, summary["checks"]
    assert (
        2 * 120 > summary["max_connections"] >= summary["peak_connections"]
        and summary["peak_connections"] <= POOL_SIZE + 1
    )  # + the watcher
    assert (
        summary["submit_calls"] == 120 * 5 + 120 + 120 + 120 * 2
    )  # answers, double clicks, changed answers, second tabs
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]


def test_a_non_postgres_url_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"--db must be a postgresql:// URL \(or set \$HUMAN_EVAL_PG_URL"):
        load_pg.LoadSettings(db="ratings.sqlite")
