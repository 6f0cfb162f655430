"""Figures, ratios and the Markdown they are written as."""

import statistics
from dataclasses import dataclass, field


@dataclass
class Figure:
    """One contender's measurement over several runs; the median is what counts."""

    case: str
    unit: str
    runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")


@dataclass(frozen=True)
class Ratio:
    what: str
    value: float
    target: str = ""
    # None: no target, reported for the record
    met: bool | None = None
    suffix: str = "x"  # empty for an absolute figure checked against a target


@dataclass
class Section:
    title: str
    figures: list[Figure] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    appendix: str = ""

    def figure(self, case: str, unit: str, note: str = "") -> Figure:
        for f in self.figures:
            if f.case == case:
                return f
        self.figures.append(Figure(case, unit, note=note))
        return self.figures[-1]

    def ratio(self, what: str, numerator: float, denominator: float, *, at_least=None, under=None) -> Ratio:
        value = numerator / denominator if denominator else float("nan")
        if at_least is not None:
            ratio = Ratio(what, value, f">= {at_least}x", value >= at_least)
        elif under is not None:
            ratio = Ratio(what, value, f"< {under}x", value < under)
        else:
            ratio = Ratio(what, value)
        self.ratios.append(ratio)
        return ratio

    def check(
        self, what: str, value: float, unit: str, *, under: float | None = None, at_least: float | None = None
    ) -> None:
        """A target on an absolute figure (a latency, a rate, a statement's length), not a ratio."""
        if at_least is not None:
            self.ratios.append(
                Ratio(what, value, f">= {at_least:,g} {unit}", value >= at_least, suffix=f" {unit}")
            )
        else:
            assert under is not None, "a check needs under or at_least"
            self.ratios.append(Ratio(what, value, f"< {under:,g} {unit}", value < under, suffix=f" {unit}"))


def _number(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def _met(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: ""}[met]


def markdown(sections: list[Section], machine: dict[str, str], *, command: str, elapsed_s: float) -> str:
    lines = [
        "# jobfleet benchmarks",
        "",
        f"Written by `{command}` in {elapsed_s / 60:.1f} minutes. Figures are medians of the runs listed;",
        "ratios compare medians. None of this is a test that fails on time.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in machine.items()),
        "",
        "## Ratios against the targets",
        "",
        "| benchmark | ratio | measured | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in sections:
        for r in s.ratios:
            measured = _number(r.value) + r.suffix
            lines.append(f"| {s.title} | {r.what} | {measured} | {r.target} | {_met(r.met)} |")
    for s in sections:
        lines += [
            "",
            f"## {s.title}",
            "",
            "| case | median | unit | runs | note |",
            "| --- | --- | --- | --- | --- |",
        ]
        for f in s.figures:
            runs = ", ".join(_number(v) for v in f.runs)
            lines.append(f"| {f.case} | {_number(f.median)} | {f.unit} | {runs} | {f.note} |")
        if s.notes:
            lines += ["", *(f"- {n}" for n in s.notes)]
        if s.appendix:
            lines += ["", s.appendix]
    return "\n".join(lines) + "\n"
