"""Search parameters that the file and the REST source read the same way."""

from __future__ import annotations

from collections.abc import Mapping

from connector.errors import FhirSourceError


def count_param(resource_type: str, params: Mapping[str, str], url: str) -> int | None:
    """``_count`` is a page size: a positive integer, or absent.

    FHIR lets ``_count=0`` mean "only the total"; ``search`` promises every match, so both
    sources refuse 0 (and anything not a positive integer) instead of silently returning
    nothing or everything; ``count()`` is the way to ask for a total.
    """
    value = params.get("_count")
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise FhirSourceError(
            f"search {resource_type}: _count={value!r} is not a page size (a positive integer); "
            "use count() for the number of matches",
            url=url,
        )
    return int(text)
