from __future__ import annotations

from catalog.examples import example_policies
from connector.api.plain_words import plain_policy


def test_offers_read_as_sentences() -> None:
    aggregate, synthetic = example_policies("x", base_url="http://h")
    assert plain_policy(aggregate) == (
        "Research only, results of 10 persons or more, aggregate results only and members of "
        "the data space."
    )
    assert plain_policy(synthetic).startswith("Research only, until 2027-12-31")


def test_no_constraint() -> None:
    words = plain_policy({"@type": "Offer", "permission": [{"action": "use"}]})
    assert words.endswith(".") and words[0].isupper()
