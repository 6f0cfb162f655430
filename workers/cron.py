"""Cron expressions in UTC: ``minute hour day-of-month month day-of-week``, with an optional leading
seconds field. Fields take ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n`` and comma lists; day-of-week 0
or 7 is Sunday. As in cron, when both day fields are restricted a day matching either one counts."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_RANGES = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "dom": (1, 31),
    "month": (1, 12),
    "dow": (0, 7),
}
# a tick is searched for within this many days back
_SEARCH_DAYS = 4 * 366


class CronError(ValueError):
    pass


def _field(text: str, name: str) -> tuple[int, ...]:
    low, high = _RANGES[name]
    values: set[int] = set()
    for part in text.split(","):
        spec, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if spec == "*":
                start, end = low, high
            elif "-" in spec:
                start, end = (int(x) for x in spec.split("-", 1))
            else:
                start = end = int(spec)
                if step_text:
                    end = high
        except ValueError:
            raise CronError(f"{name} field {text!r} is not a cron field") from None
        if not (low <= start <= end <= high) or step < 1:
            raise CronError(f"{name} field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    if name == "dow" and 7 in values:
        values = (values - {7}) | {0}
    return tuple(sorted(values))


@dataclass(frozen=True)
class Cron:
    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> "Cron":
        parts = expression.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise CronError(f"cron {expression!r} needs 5 fields (or 6 with seconds), not {len(parts)}")
        second, minute, hour, dom, month, dow = parts
        return cls(
            expression,
            _field(second, "second"),
            _field(minute, "minute"),
            _field(hour, "hour"),
            _field(dom, "dom"),
            _field(month, "month"),
            _field(dow, "dow"),
            dom == "*",
            dow == "*",
        )

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = day.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def previous(self, at: datetime) -> datetime:
        """The latest tick at or before ``at``."""
        at = at.astimezone(UTC)
        day = at.date()
        for back in range(_SEARCH_DAYS):
            if self._day_matches(day):
                tick = self._last_on(day, at if back == 0 else None)
                if tick is not None:
                    return tick
            day -= timedelta(days=1)
        raise CronError(f"cron {self.expression!r} has no tick in the last {_SEARCH_DAYS} days")

    def _last_on(self, day: date, bound: datetime | None) -> datetime | None:
        for hour in reversed(self.hours):
            if bound and hour > bound.hour:
                continue
            same_hour = bound is not None and hour == bound.hour
            for minute in reversed(self.minutes):
                if same_hour and minute > bound.minute:
                    continue
                same_minute = same_hour and minute == bound.minute
                for second in reversed(self.seconds):
                    if same_minute and second > bound.second:
                        continue
                    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)
        return None

    def next_after(self, at: datetime) -> datetime:
        """The first tick after ``at``, skipping whole days, hours and minutes that cannot match."""
        t = at.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + timedelta(days=_SEARCH_DAYS)
        while t < limit:
            if not self._day_matches(t.date()):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0)
            elif t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0, second=0)
            elif t.minute not in self.minutes:
                t = (t + timedelta(minutes=1)).replace(second=0)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise CronError(f"cron {self.expression!r} has no tick in the next {_SEARCH_DAYS} days")
