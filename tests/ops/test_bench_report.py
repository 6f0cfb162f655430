"""The benchmark report: every ratio and target row carries the min-max of its runs."""

from ops.bench.report import Figure, Section, number, ratio_table


def test_a_ratio_of_two_figures_carries_the_run_by_run_spread() -> None:
    section = Section("sweep")
    one = Figure("one worker", "s", runs=[5.5, 5.4, 6.0])
    ref = Figure("reference", "s", runs=[5.0, 6.0, 5.0])
    ratio = section.ratio("one / reference", one, ref, under=1.1)
    assert ratio.value == 5.5 / 5.0
    assert ratio.spread == (0.9, 1.2)  # round i against round i: 5.4/6.0 and 6.0/5.0
    assert ratio.met is False


def test_a_target_on_a_figure_shows_its_min_max_either_way() -> None:
    section = Section("outbox")
    section.check_figure(
        "throughput", Figure("rows/s", "rows/s", runs=[6000, 4000, 9000]), "rows/s", at_least=5000
    )
    section.check_figure("p99", Figure("p99", "ms", runs=[12, 60, 30]), "ms", under=50)
    assert ratio_table([section])[2:] == [
        "| outbox | throughput | 6,000 rows/s | >= 5,000 rows/s | yes | 4,000-9,000 rows/s |",
        "| outbox | p99 | 30.0 ms | < 50 ms | yes | 12.0-60.0 ms |",
    ]


def test_short_runs_keep_three_significant_digits() -> None:
    # 0.055 s against 0.046 s is a 1.2x ratio; printed as 0.06 and 0.05 its spread cannot be read back
    assert [number(v) for v in (0.0553, 0.046, 5.49, 1234.5)] == ["0.0553", "0.046", "5.49", "1,234"]
