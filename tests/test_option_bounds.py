"""Numbers on the command line are bounded while it is parsed (common.options): one line naming the
option and the allowed range, before anything is read or computed (10**9 resamples asked numpy for
150+ GiB; 10**9 power studies ran for ever; --seed -1 named no option)."""

from __future__ import annotations

import pytest

from imagen_bench.cli import main as cli

HUGE = str(10**9)

BOUNDED = [
    (["leaderboard", "RUN", "--resamples", HUGE], "--resamples: must be an integer in [100, 100000]"),
    (["report", "RUN", "--out", "R", "--resamples", HUGE], "--resamples: must be an integer in [100, 100000]"),
    (["report", "RUN", "--out", "R", "--power-studies", HUGE], "--power-studies: must be an integer in [10, 10000]"),
    (["power", "--effect", "0.05", "--studies", HUGE], "--studies: must be an integer in [10, 10000]"),
    (["power", "--effect", "0.05", "--resamples", HUGE], "--resamples: must be an integer in [100, 100000]"),
    (["power", "--effect", "0.05", "--prompts", HUGE], "--prompts: must be an integer in [2, 10000]"),
    (["power", "--effect", "0.05", "--raters", "1"], "--raters: must be an integer in [2, 10000]"),
    (
        ["power", "--effect", "0.05", "--answers-per-rater", "0"],
        "--answers-per-rater: must be an integer in [1, 10000]",
    ),
    (
        ["power", "--effect", "0.05", "--grid", f"10,{HUGE}"],
        "--grid: must be 1 to 100 comma-separated integers in [2, 10000]",
    ),
    (
        ["power", "--effect", "0.05", "--grid", ",".join(["10"] * 101)],
        "--grid: must be 1 to 100 comma-separated integers",
    ),
    (["power", "--effect", "0.05", "--studies", "1e3"], "--studies: must be an integer in [10, 10000], got '1e3'"),
]

# every command that takes --seed (imagen_bench.cli.COMMANDS), with its other required arguments
SEEDED = [
    ["report", "RUN", "--out", "R"],
    ["leaderboard", "RUN"],
    ["power", "--effect", "0.05"],
    ["study", "create", "--protocol", "coco_alignment", "--a", "folder:X", "--out", "S"],
    ["sample", "--checkpoint", "C", "--prompt", "a red circle"],
    ["shapes", "verifier-accuracy"],
    ["coverage", "--out", "O"],
    ["trials", "fuzz", "--workdir", "W"],
    ["trials", "kill-sweep", "--workdir", "W"],
    ["trials", "kill-server", "--workdir", "W"],
    ["trials", "concurrent-sweep", "--workdir", "W"],
]


def _refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        cli(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, message", BOUNDED, ids=[" ".join(a[:1] + a[-2:-1]) for a, _ in BOUNDED])
def test_huge_or_tiny_numbers_are_refused_at_parse_time(argv, message, capsys):
    line = _refused(argv, capsys)
    assert line.startswith(f"imagen-bench {argv[0]}: error: argument ") and message in line


@pytest.mark.parametrize("argv", SEEDED, ids=[" ".join(a[:2]) for a in SEEDED])
def test_a_negative_seed_is_refused_naming_the_option(argv, capsys):
    line = _refused([*argv, "--seed", "-1"], capsys)
    assert line.endswith("error: argument --seed: must be an integer in [0, 4294967295], got '-1'")


def test_power_refuses_resamples_times_units_beyond_memory_before_simulating(capsys):
    assert cli(["power", "--effect", "0.05", "--resamples", "100000", "--prompts", "10000", "--raters", "10000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imagen-bench power: error: resamples x (prompts + raters) = 100000 x 10160 needs 7.6 GiB")
    assert len(err.splitlines()) == 1
