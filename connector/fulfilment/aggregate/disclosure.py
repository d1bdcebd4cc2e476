"""Which cells of an answer are suppressed: primary and secondary cell suppression.

Primary: a count under the minimum cell size (zero included: showing zeros while hiding 1-9
would tell that a hidden cell holds someone).

Secondary: where released strata add up to a released margin (``cells.Partition``: sex and
age strata to the cohort count, histogram bins to their count), the hidden strata of that
margin add up to the margin minus the shown ones. So each margin's hidden strata must be at
least two and hold at least the minimum cell size between them; otherwise the smallest shown
stratum (the first of equals) is hidden too, until they do. A hidden margin hides all its
strata (each is at most the margin). Code strata overlap and have no margin, so nothing
recovers one from the others. A sum is hidden with its count.

What this does not cover, because no released cell equals it: the difference of two margins
(the cohort count minus a numeric measure's count, or two overlapping cohorts). Those are
protected by the noise on every released value and by answering a repeated query from the
cache (``release.py``).

Decisions are made on the values given: true values for an answer computed here, noisy totals
for a securely aggregated one (where nobody knows the true values). ``absent`` cells (of a
combination of hospitals' released answers: no hospital showed them) are hidden; a margin
whose hidden strata include one is left as it is, since each hospital protected its own
hidden strata before releasing the rest, and the sum of released answers tells nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence

from connector.fulfilment.aggregate.cells import CellKind, Layout


def suppressed(
    layout: Layout,
    values: Sequence[float],
    min_cell_size: int,
    *,
    absent: frozenset[int] = frozenset(),
) -> frozenset[int]:
    hidden = set(absent) | {
        i
        for i, cell in enumerate(layout.cells)
        if cell.kind is CellKind.COUNT and values[i] < min_cell_size
    }
    for part in layout.partitions:
        members = part.members
        if part.margin in hidden:
            hidden.update(members)
            continue
        group = [j for j in members if j in hidden]
        if not group or absent.intersection(group):
            continue
        shown = sorted((j for j in members if j not in hidden), key=lambda j: (values[j], j))
        while shown and (len(group) < 2 or sum(values[j] for j in group) < min_cell_size):
            group.append(shown.pop(0))
        hidden.update(group)
    hidden.update(
        i
        for i, cell in enumerate(layout.cells)
        if cell.count_cell is not None and cell.count_cell in hidden
    )
    return frozenset(hidden)
