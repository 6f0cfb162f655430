"""What a job is given to work with: settings and database engines, built once per process."""

from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncEngine

from db.engines import pickatale_engine, pinteach_engine
from jobfleet.settings import Settings
from jobs.marks import Marks


@dataclass(frozen=True, slots=True)
class Deps:
    settings: Settings
    pinteach: AsyncEngine
    pickatale: AsyncEngine
    # where incremental jobs keep their high-water marks; None: they do the full work every run
    marks: Marks | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Deps":
        return cls(
            settings=settings,
            pinteach=pinteach_engine(settings.pinteach_dsn),
            pickatale=pickatale_engine(settings.pickatale_dsn, prefix=settings.pickatale_db_prefix),
        )

    def with_settings(self, **update: object) -> "Deps":
        """The same engines with some settings changed (a smaller batch, another API base)."""
        return replace(self, settings=self.settings.model_copy(update=update))

    def with_marks(self, marks: Marks | None) -> "Deps":
        return replace(self, marks=marks)

    async def close(self) -> None:
        await self.pinteach.dispose()
        await self.pickatale.dispose()
