"""The one backoff: job retries and the calendar rows a sweep retries follow it."""

from jobs.backoff import backoff_s


def test_backoff_schedule_grows_exponentially_caps_and_honours_retry_after():
    def wait(attempts, jitter, retry_after_s=None):
        return backoff_s(attempts, first_s=60, cap_s=3600, retry_after_s=retry_after_s, jitter=jitter)

    assert [wait(n, jitter=1.0) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert [wait(n, jitter=0.0) for n in range(1, 4)] == [30, 60, 120]
    assert wait(1, jitter=0.5, retry_after_s=900) == 900
    assert wait(3, jitter=1.0, retry_after_s=5) == 240
