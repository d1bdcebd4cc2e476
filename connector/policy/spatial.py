"""Places for the ``spatial`` operand: ISO 3166-1 country codes and the EU / EEA regions.

A place is written as an alpha-2 code (``DE``), an alpha-3 code (``DEU``), an EU Publications
Office country IRI (``http://publications.europa.eu/resource/authority/country/DEU``) or a
region (``EU``, ``EEA``); all normalise to the alpha-2 code or the region name. Anything else
is kept as written (an IRI of some other gazetteer compares by equality only).
"""

from __future__ import annotations

_EU_ALPHA3 = {
    "AUT": "AT", "BEL": "BE", "BGR": "BG", "HRV": "HR", "CYP": "CY", "CZE": "CZ", "DNK": "DK",
    "EST": "EE", "FIN": "FI", "FRA": "FR", "DEU": "DE", "GRC": "GR", "HUN": "HU", "IRL": "IE",
    "ITA": "IT", "LVA": "LV", "LTU": "LT", "LUX": "LU", "MLT": "MT", "NLD": "NL", "POL": "PL",
    "PRT": "PT", "ROU": "RO", "SVK": "SK", "SVN": "SI", "ESP": "ES", "SWE": "SE",
}  # fmt: skip
_OTHER_ALPHA3 = {
    "ISL": "IS", "LIE": "LI", "NOR": "NO", "CHE": "CH", "GBR": "GB", "USA": "US", "CAN": "CA",
    "UKR": "UA", "SRB": "RS", "TUR": "TR", "ISR": "IL", "AUS": "AU", "JPN": "JP", "CHN": "CN",
}  # fmt: skip
ALPHA3 = {**_EU_ALPHA3, **_OTHER_ALPHA3}

EU = frozenset(_EU_ALPHA3.values())
REGIONS: dict[str, frozenset[str]] = {
    "EU": EU,
    "EEA": EU | {"IS", "LI", "NO"},
}
_EU_AUTHORITY = "http://publications.europa.eu/resource/authority/country/"


def normalise_place(place: str) -> str:
    text = place.strip()
    if text.startswith(_EU_AUTHORITY):
        text = text[len(_EU_AUTHORITY) :]
    upper = text.upper()
    if upper in REGIONS or (len(upper) == 2 and upper.isalpha()):
        return upper
    if upper in ALPHA3:
        return ALPHA3[upper]
    # The Publications Office writes the EU itself as EUR; other codes kept verbatim.
    if upper == "EUR":
        return "EU"
    return text


def is_part_of(place: str, region: str) -> bool:
    """True if ``place`` is ``region`` or lies inside it (both normalised)."""
    return place == region or place in REGIONS.get(region, frozenset())
