"""How many rows the next chunk takes: sized by how long the previous chunks took, not a constant.

A fixed chunk is short on a warm cache and long on a cold one: 5,000 rows took 90 ms in memory and
2.7 s from disk on the same table. The sizer aims each chunk's transaction at ``target_s`` (a bit
under it, so one slow chunk does not breach it): after each chunk it estimates the rows per second
it just saw and sizes the next chunk for the target. It shrinks straight to that size when a chunk
ran past the target, grows (at most twofold a step) when chunks take less than ``AIM`` of it, keeps
its size in between (no see-saw on noise), and stays between ``floor`` (a statement per handful of
rows is not set-based) and ``ceiling`` (the policy's ``chunk_size``).
"""

from dataclasses import dataclass, field

START_ROWS = 500  # the first chunk, before anything is known: short even on a cold disk
FLOOR_ROWS = 50
AIM = 0.8  # of the target: the next chunk is sized for 80% of it
MAX_GROWTH = 2.0


@dataclass
class ChunkSizer:
    ceiling: int
    target_s: float
    floor: int = FLOOR_ROWS
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.floor = min(self.floor, self.ceiling)
        self.size = max(self.floor, min(self.ceiling, START_ROWS))

    def observe(self, rows: int, took_s: float) -> int:
        """Record that a chunk of ``rows`` rows took ``took_s``; return the next chunk's size."""
        if rows <= 0:
            return self.size
        if took_s <= 0:
            ideal = rows * MAX_GROWTH
        elif took_s > self.target_s or took_s < self.target_s * AIM:
            ideal = min(rows / took_s * self.target_s * AIM, rows * MAX_GROWTH)
        else:
            ideal = rows
        self.size = max(self.floor, min(self.ceiling, int(ideal)))
        return self.size
