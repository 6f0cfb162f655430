"""The purge's chunk sizing, fed measured durations directly: no clock, no threshold on real time."""

from jobs.retention.chunk_sizer import START_ROWS, ChunkSizer


def test_starts_small_and_never_above_the_policys_chunk_size():
    assert ChunkSizer(ceiling=20_000, target_s=0.2).size == START_ROWS
    assert ChunkSizer(ceiling=120, target_s=0.2).size == 120


def test_grows_at_most_twofold_a_step_while_chunks_are_fast_up_to_the_ceiling():
    sizer = ChunkSizer(ceiling=5000, target_s=0.2)
    sizes = [sizer.observe(sizer.size, 0.001) for _ in range(6)]
    assert sizes == [1000, 2000, 4000, 5000, 5000, 5000]


def test_shrinks_at_once_to_fit_the_target_when_a_chunk_runs_long():
    sizer = ChunkSizer(ceiling=20_000, target_s=0.2)
    sizer.size = 10_000
    # 10,000 rows in 2 s is 5,000 rows/s: 80% of 0.2 s of that is 800 rows
    assert sizer.observe(10_000, 2.0) == 800


def test_settles_where_a_chunk_takes_just_under_the_target():
    """A table that deletes 7,000 rows/s (the full-size run's cold disk): chunks converge to ~1,100
    rows, each about 160 ms, and stay there."""
    sizer = ChunkSizer(ceiling=20_000, target_s=0.2)
    took = []
    for _ in range(20):
        took_s = sizer.size / 7000
        took.append(took_s)
        sizer.observe(sizer.size, took_s)
    assert max(took) <= 0.2
    assert all(0.16 <= t <= 0.2 for t in took[-10:]), took
    assert 1100 <= sizer.size <= 1400


def test_keeps_its_size_on_small_noise_between_the_aim_and_the_target():
    sizer = ChunkSizer(ceiling=20_000, target_s=0.2)
    sizer.size = 3000
    assert sizer.observe(3000, 0.19) == 3000
    assert sizer.observe(3000, 0.165) == 3000


def test_never_below_the_floor_nor_stuck_on_zero_durations():
    sizer = ChunkSizer(ceiling=5000, target_s=0.2, floor=50)
    assert sizer.observe(sizer.size, 60.0) == 50
    assert sizer.observe(50, 0.0) == 100
    tiny = ChunkSizer(ceiling=10, target_s=0.2)
    assert tiny.observe(10, 60.0) == 10  # a ceiling under the floor is the floor
