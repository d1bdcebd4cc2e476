"""docs/researcher.md names the catalog UI's buttons, steps and outcomes as the UI shows them
(the flow itself runs in a browser in tests/e2e/test_catalog_ui.py and
tests/e2e/test_research_flow.py)."""

from __future__ import annotations

import re

from connector.api import catalog_ui, research_ui
from tests.processes import REPO


def test_the_words_the_guide_quotes_are_the_uis() -> None:
    guide = (REPO / "docs" / "researcher.md").read_text()
    shown = "\n".join(
        p.read_text()
        for folder in ("catalog/templates", "connector/api/templates")
        for p in (REPO / folder).glob("*.html")
    )
    shown += "\n".join(label for _, label in catalog_ui.STEPS)
    shown += (REPO / "connector" / "api" / "catalog_ui.py").read_text()
    # The agreement page's buttons, one per format: "Start a transfer: <what>".
    shown += "\n".join(f"Start a transfer: {w}" for w in research_ui.FORMAT_LABELS.values())
    quoted = re.findall(r"\*\*(.+?)\*\*", guide) + re.findall(r'"([A-Z][a-z ]+an offer)"', guide)
    assert len(quoted) >= 8
    for words in quoted:
        assert words in shown, words
    assert [label for _, label in catalog_ui.STEPS] == re.findall(
        r"^\d\. \*\*(.+?)\*\*", guide, flags=re.MULTILINE
    )
