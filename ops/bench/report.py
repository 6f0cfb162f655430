"""Figures, ratios and the Markdown they are written as."""

import statistics
from dataclasses import dataclass, field


@dataclass
class Figure:
    """One contender's measurement over several runs: the median counts, the min-max shows the spread."""

    case: str
    unit: str
    runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")

    @property
    def spread(self) -> tuple[float, float]:
        return (min(self.runs), max(self.runs)) if self.runs else (float("nan"), float("nan"))


@dataclass(frozen=True)
class Ratio:
    what: str
    value: float
    target: str = ""
    # None: no target, reported for the record
    met: bool | None = None
    suffix: str = "x"  # empty for an absolute figure checked against a target
    # lowest and highest of the same ratio taken run by run (round i against round i)
    spread: tuple[float, float] | None = None


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

    def ratio(self, what: str, numerator, denominator, *, at_least=None, under=None) -> Ratio:
        """Ratio of two medians; given two Figures, also the min-max of the run-by-run ratios."""
        spread = None
        if isinstance(numerator, Figure) and isinstance(denominator, Figure):
            pairs = [n / d for n, d in zip(numerator.runs, denominator.runs, strict=False) if d]
            spread = (min(pairs), max(pairs)) if len(pairs) > 1 else None
            numerator, denominator = numerator.median, denominator.median
        value = numerator / denominator if denominator else float("nan")
        if at_least is not None:
            ratio = Ratio(what, value, f">= {at_least}x", value >= at_least, spread=spread)
        elif under is not None:
            ratio = Ratio(what, value, f"< {under}x", value < under, spread=spread)
        else:
            ratio = Ratio(what, value, spread=spread)
        self.ratios.append(ratio)
        return ratio

    def check_figure(
        self,
        what: str,
        figure: Figure,
        unit: str,
        *,
        under: float | None = None,
        at_least: float | None = None,
    ) -> None:
        """A target on a figure's median, with the figure's min-max beside it."""
        self.check(what, figure.median, unit, under=under, at_least=at_least, spread=figure.spread)

    def check(
        self,
        what: str,
        value: float,
        unit: str,
        *,
        under: float | None = None,
        at_least: float | None = None,
        spread: tuple[float, float] | None = None,
    ) -> None:
        """A target on an absolute figure (a latency, a rate, a statement's length), not a ratio."""
        if at_least is not None:
            target, met = f">= {at_least:,g} {unit}", value >= at_least
        else:
            assert under is not None, "a check needs under or at_least"
            target, met = f"< {under:,g} {unit}", value < under
        self.ratios.append(Ratio(what, value, target, met, suffix=f" {unit}", spread=spread))


def number(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    if 0 < abs(value) < 1:
        # three significant digits: short runs (0.05 s) are otherwise too coarse for a ratio
        return f"{value:.3g}"
    return f"{value:,.2f}"


def _range(spread: tuple[float, float] | None, suffix: str = "") -> str:
    if spread is None:
        return ""
    low, high = spread
    return f"{number(low)}-{number(high)}{suffix}"


def _met(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: ""}[met]


def ratio_table(sections: list[Section]) -> list[str]:
    """The table of ratios against targets: what the README quotes."""
    lines = [
        "| benchmark | ratio | measured | target | met | min-max of runs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in sections:
        for r in s.ratios:
            measured = number(r.value) + r.suffix
            spread = _range(r.spread, r.suffix)
            lines.append(f"| {s.title} | {r.what} | {measured} | {r.target} | {_met(r.met)} | {spread} |")
    return lines


def markdown(
    sections: list[Section],
    machine: dict[str, str],
    *,
    command: str,
    elapsed_s: float,
    date: str,
    smoke: bool,
) -> str:
    lines = ["# jobfleet benchmarks", ""]
    if smoke:
        lines += [
            "**Smoke run at reduced sizes: these figures check that the benchmarks work; do not quote them.**",
            "",
        ]
    lines += [
        f"Written by `{command}` on {date}, in {elapsed_s / 60:.1f} minutes. Figures are medians of the runs",
        "listed, with their min-max; ratios compare medians, and their min-max is the same ratio taken run",
        "by run. None of this is a test that fails on time.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in machine.items()),
        "",
        "## Ratios against the targets",
        "",
        *ratio_table(sections),
    ]
    for s in sections:
        lines += [
            "",
            f"## {s.title}",
            "",
            "| case | median | min-max | unit | runs | note |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for f in s.figures:
            runs = ", ".join(number(v) for v in f.runs)
            lines.append(
                f"| {f.case} | {number(f.median)} | {_range(f.spread)} | {f.unit} | {runs} | {f.note} |"
            )
        if s.notes:
            lines += ["", *(f"- {n}" for n in s.notes)]
        if s.appendix:
            lines += ["", s.appendix]
    return "\n".join(lines) + "\n"
