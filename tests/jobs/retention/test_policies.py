from datetime import timedelta

import pytest

from jobfleet.settings import Settings
from jobs.retention.policies import PolicyError, load_policies

GOOD = """
["telemetry.events"]
table = "telemetry.events"
time_columns = ["created_at"]
max_age_days = 90
chunk_size = 5000
pause_between_chunks_s = 0.1
action = "delete"
"""


def test_the_shipped_policies_load():
    policies = load_policies(Settings().retention_file)

    assert list(policies) == ["telemetry.events", "account_center.sessions", "reader_app.reading_sessions"]
    events = policies["telemetry.events"]
    assert (events.max_age, events.action, events.time_columns) == (
        timedelta(days=90),
        "delete",
        ("created_at",),
    )
    sessions = policies["account_center.sessions"]
    assert (sessions.max_age, sessions.combine) == (timedelta(days=30), "any")
    readings = policies["reader_app.reading_sessions"]
    assert (readings.max_age, readings.combine, readings.action) == (
        timedelta(hours=24),
        "first_non_null",
        "update",
    )
    assert (readings.where, readings.set_to) == ({"state": "open"}, {"state": "abandoned"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("max_age_days = 90", "max_age_days = -1"), "max_age_days: Input should be greater than 0"),
        (("max_age_days = 90", "max_age_hours = 2\nmax_age_days = 90"), "exactly one of max_age_days"),
        (("chunk_size = 5000", "chunk_size = 0"), "chunk_size: Input should be greater than or equal to 1"),
        (('action = "delete"', 'action = "truncate"'), "action: Input should be 'delete' or 'update'"),
        (('table = "telemetry.events"', 'table = "telemetry.evnts"'), "table 'telemetry.evnts' is not"),
        (('["created_at"]', '["created"]'), "time_columns: telemetry.events has no column 'created'"),
        (('["created_at"]', '["event_id"]'), "time_columns: 'event_id' is not a DATETIME column"),
        (('action = "delete"', 'action = "update"'), "an update policy needs set_to"),
        (
            ('action = "delete"', 'action = "delete"\nset_to = { word = "x" }'),
            "a delete policy takes no set_to",
        ),
        (('action = "delete"', 'action = "delete"\nwhere = { event_type = "nap" }'), "'nap' is not a value"),
        (('action = "delete"', 'action = "delete"\nage = 3'), "age: Extra inputs are not permitted"),
    ],
)
def test_a_bad_policy_names_itself_and_the_field(tmp_path, change, message):
    path = tmp_path / "retention.toml"
    path.write_text(GOOD.replace(*change))

    with pytest.raises(PolicyError) as e:
        load_policies(path)

    assert "policy 'telemetry.events'" in str(e.value)
    assert message in str(e.value)


def test_a_missing_or_unreadable_file_says_so(tmp_path):
    with pytest.raises(PolicyError, match="cannot read the retention policies"):
        load_policies(tmp_path / "absent.toml")
    (tmp_path / "broken.toml").write_text("[unclosed")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policies(tmp_path / "broken.toml")
