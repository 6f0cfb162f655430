"""A Pickatale class for the learner erasure tests: rows of two learners, snapshots to compare."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.pickatale import learner_erasure_requests, metadata
from demo.learners import seed_class, seed_learner
from tests.factories import ago


async def world(
    engine: AsyncEngine, *, n_events: int = 30, other_events: int = 30, **request: Any
) -> dict[str, Any]:
    """Emma (to be erased) and Noah in one class, and a request for Emma due yesterday."""
    async with engine.begin() as conn:
        ids = await seed_class(conn)
        emma = await seed_learner(
            conn, ids["class_id"], name="Emma Hansen", username="emma.h", n_events=n_events
        )
        noah = await seed_learner(
            conn, ids["class_id"], name="Noah Berg", username="noah.b", n_events=other_events
        )
    request_id = await add_request(engine, emma["learner_id"], ids["parent_id"], **request)
    return {**ids, "emma": emma, "noah": noah, "request_id": request_id}


async def add_request(engine: AsyncEngine, learner_id: str, requested_by: int, **values: Any) -> int:
    row = {
        "learner_id": learner_id,
        "requested_by": requested_by,
        "reason": "Emma Hansen's mother asks us to erase Emma's account (emma.h) and reading history.",
        "requested_at": ago(days=31).replace(tzinfo=None),
        "due_at": ago(days=1).replace(tzinfo=None),
        **values,
    }
    async with engine.begin() as conn:
        return (await conn.execute(learner_erasure_requests.insert().values(row))).inserted_primary_key[0]


async def snapshot(engine: AsyncEngine) -> dict[str, dict[Any, tuple]]:
    """Every row of every Pickatale table, by primary key."""
    tables: dict[str, dict[Any, tuple]] = {}
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            (pk,) = table.primary_key.columns
            rows = (await conn.execute(select(table))).all()
            tables[table.fullname] = {row._mapping[pk.name]: tuple(row) for row in rows}
    return tables


def differences(before: dict[str, dict], after: dict[str, dict]) -> dict[str, dict[str, set]]:
    """Per table, the ids of rows deleted, added and changed."""
    found = {}
    for name, rows in before.items():
        now = after[name]
        changes = {
            "deleted": set(rows) - set(now),
            "added": set(now) - set(rows),
            "changed": {k for k in set(rows) & set(now) if rows[k] != now[k]},
        }
        if any(changes.values()):
            found[name] = changes
    return found


def rows_of(snap: dict[str, dict], learner: dict[str, Any]) -> dict[str, set]:
    """The ids of a learner's rows in a snapshot (by uuid, or by student id where tables key on it)."""
    owned: dict[str, set] = {}
    for name, rows in snap.items():
        table = metadata.tables[name]
        if name == "account_center.learner_erasure_requests":
            continue
        for key, column in (("learner_id", "learner_id"), ("student_id", "student_id"), ("uuid", "uuid")):
            if column in table.c:
                index = list(table.c.keys()).index(column)
                wanted = learner["student_id"] if key == "student_id" else learner["learner_id"]
                ids = {k for k, row in rows.items() if row[index] == wanted}
                if ids:
                    owned.setdefault(name, set()).update(ids)
    return owned


def assert_only_the_learner_changed(
    before: dict[str, dict], after: dict[str, dict], w: dict[str, Any]
) -> None:
    """The erased learner's rows deleted (her student row and memberships kept, changed), the request
    changed, and every other row of every table as it was."""
    owned = rows_of(before, w["emma"])
    changes = differences(before, after)
    kept = {"teacher_portal.students", "teacher_portal.class_memberships"}
    for name, ids in owned.items():
        expected = (
            {"deleted": set(), "added": set(), "changed": ids}
            if name in kept
            else {
                "deleted": ids,
                "added": set(),
                "changed": set(),
            }
        )
        assert changes.get(name) == expected, name
    assert changes["account_center.learner_erasure_requests"] == {
        "deleted": set(),
        "added": set(),
        "changed": {w["request_id"]},
    }
    assert set(changes) == set(owned) | {"account_center.learner_erasure_requests"}
    for name, ids in rows_of(before, w["noah"]).items():
        assert {k: before[name][k] for k in ids} == {k: after[name][k] for k in ids}, name
