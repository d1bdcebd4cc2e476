"""The operand tables of docs/wire-profile.md and docs/publish.md list exactly the left
operands the policy engine knows, each with exactly the operators it accepts."""

from __future__ import annotations

import re

import pytest

from connector.policy.operands import OPERANDS
from connector.policy.vocab import ODRL, PHEMS, LeftOperand, Operator
from tests.processes import REPO

OPERATORS = {o.value for o in Operator}


def _table(doc: str) -> dict[LeftOperand, set[Operator]]:
    rows = re.findall(
        r"^\| `([^`]+)` \| (.+?) \|", (REPO / "docs" / doc).read_text(), flags=re.MULTILINE
    )
    out = {}
    for name, operators in rows:
        full = PHEMS + name.split(":", 1)[1] if name.startswith("phems:") else name
        full = full if full.startswith("http") else ODRL + full
        if full not in {o.value for o in LeftOperand}:
            continue
        words = re.findall(r"`([a-zA-Z]+)`", operators)
        out[LeftOperand(full)] = {Operator(ODRL + w) for w in words if ODRL + w in OPERATORS}
    return out


@pytest.mark.parametrize("doc", ["wire-profile.md", "publish.md"])
def test_operand_tables_match_the_engine(doc: str) -> None:
    table = _table(doc)
    assert set(table) == set(OPERANDS)
    for operand, spec in OPERANDS.items():
        assert table[operand] == set(spec.operators), operand
