"""The benchmark registry and the shape of a result: tables of figures measured side by side, and targets.

A benchmark is a function ``(sizes, quick) -> Result`` registered with :func:`benchmark`. It measures its
figures as counts or ratios in the same run (absolute times on a shared machine are noise), fills one or more
tables, and checks each promise as a :class:`Target`; the runner prints them and fails when a target is missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


@dataclass
class Table:
    """Rows of figures under a title; cells are already formatted text."""

    title: str
    columns: Sequence[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        """Add a row (each cell through ``str``)."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: a row has {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(cell) for cell in cells])


@dataclass(frozen=True)
class Target:
    """A promise checked against a measured figure."""

    figure: str
    measured: str
    target: str
    passed: bool


@dataclass
class Result:
    """What a benchmark measured: its tables, its targets, and notes for the reader."""

    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, title: str, columns: Sequence[str]) -> Table:
        """Start a new table."""
        table = Table(title, columns)
        self.tables.append(table)
        return table

    def check(self, figure: str, measured: str, target: str, passed: bool) -> bool:
        """Record a target and return whether it was met."""
        self.targets.append(Target(figure, measured, target, passed))
        return passed

    @property
    def passed(self) -> bool:
        """Whether every target was met (a benchmark without targets passes when it ran)."""
        return all(target.passed for target in self.targets)


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark or campaign."""

    name: str
    title: str
    function: Callable[[Sequence[int], bool], Result]
    sizes: tuple[int, ...]
    quick_sizes: tuple[int, ...]
    sizes_mean: str


REGISTRY: dict[str, Benchmark] = {}


def benchmark(
    name: str, title: str, *, sizes: Sequence[int], quick_sizes: Sequence[int] | None = None, sizes_mean: str
) -> Callable[[Callable[[Sequence[int], bool], Result]], Callable[[Sequence[int], bool], Result]]:
    """Register ``function(sizes, quick) -> Result`` as benchmark ``name``.

    ``sizes`` are the default sizes (what they mean is ``sizes_mean``), ``quick_sizes`` those of ``--quick``.
    """

    def register(function: Callable[[Sequence[int], bool], Result]) -> Callable[[Sequence[int], bool], Result]:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(
            name, title, function, tuple(sizes), tuple(quick_sizes or sizes), sizes_mean=sizes_mean
        )
        return function

    return register


def format_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns (numbers right-aligned)."""
    widths = [len(column) for column in columns]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = []
        for cell, width in zip(cells, widths, strict=True):
            numeric = cell.replace(".", "", 1).replace(",", "").replace("x", "").replace("%", "").strip().isdigit()
            parts.append(cell.rjust(width) if numeric else cell.ljust(width))
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(columns), rule, *(line(row) for row in rows)])
