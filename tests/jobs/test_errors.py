"""Retry-After, as every provider adapter reads it (Google, Microsoft, Stripe)."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from jobs.errors import retry_after_s


def test_retry_after_in_seconds_or_as_an_http_date():
    assert retry_after_s("120") == 120
    assert retry_after_s("1.5") == 1.5
    in_ten_minutes = format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)
    assert 590 <= retry_after_s(in_ten_minutes) <= 600
    assert retry_after_s(format_datetime(datetime.now(UTC) - timedelta(minutes=1), usegmt=True)) == 0
    assert retry_after_s("-5") == 0
    assert retry_after_s(None) is None and retry_after_s("") is None and retry_after_s("soon") is None
