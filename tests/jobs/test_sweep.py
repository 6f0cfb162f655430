"""The batch size of a sweep follows its batches' times (the times are given, nothing is timed)."""

from jobfleet.settings import load_settings
from jobs.sweep import BatchSize


def sized(**settings) -> BatchSize:
    return BatchSize.from_settings(load_settings(**settings))


def test_starts_at_the_first_batch_and_grows_while_full_batches_are_fast():
    size = sized(sweep_batch_first=500, sweep_batch_size=5000, sweep_batch_target_ms=250)
    assert size.rows == 500
    size.observe(500, 0.05)
    assert size.rows == 1000
    for _ in range(5):
        size.observe(size.rows, 0.05)
    assert size.rows == 5000  # the setting caps it


def test_a_partial_batch_or_one_near_the_target_does_not_grow_it():
    size = sized(sweep_batch_first=500, sweep_batch_target_ms=250)
    size.observe(20, 0.01)  # the last rows due: says nothing about a bigger batch
    size.observe(500, 0.2)  # under the target, but not well under
    assert size.rows == 500


def test_a_slow_batch_shrinks_it_in_proportion_at_most_by_half_and_not_below_the_floor():
    size = sized(sweep_batch_first=1000, sweep_batch_size=5000, sweep_batch_target_ms=250)
    size.observe(1000, 0.4)
    assert size.rows == 625
    size.observe(625, 5.0)  # a lock wait: halved, not cut twentyfold
    assert size.rows == 312
    for _ in range(10):
        size.observe(size.rows, 5.0)
    assert size.rows == 100  # a tenth of the first batch: a fixed cost is not shrunk away


def test_a_small_cap_holds_every_batch_at_it():
    size = sized(sweep_batch_size=3)
    assert size.rows == 3
    size.observe(3, 0.001)
    assert size.rows == 3
    size.observe(3, 9.0)
    assert size.rows == 3  # the floor is never above the cap, nor below it here
