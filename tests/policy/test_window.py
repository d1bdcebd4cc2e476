"""permitted_until: the first instant a permitted request would be refused as time passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.policy import Scope, evaluate, permitted_until, time_bounds, validate_policy
from tests.policy.helpers import NOW, PHEMS, c, ctx, membership, offer, permit, policy

HOUR = timedelta(hours=1)
UNTIL = NOW + HOUR
MEMBER = c(PHEMS + "membership", "eq", True)


def _until(p: Any, **context: Any) -> datetime:
    context.setdefault("credentials", (membership(),))
    context.setdefault("output_type", "aggregate")
    ctx_ = ctx(**context)
    assert evaluate(p, ctx_, Scope.TRANSFER), "the tests start from a permitted request"
    return permitted_until(p, ctx_, Scope.TRANSFER, until=UNTIL)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_nothing_time_bound_lasts_until_the_limit() -> None:
    assert _until(policy(MEMBER, c("purpose", "eq", "research"))) == UNTIL


def test_an_inclusive_end_is_passed_just_after_it() -> None:
    end = NOW + timedelta(minutes=20)
    assert _until(policy(c("dateTime", "lteq", _iso(end)))) == end + timedelta(microseconds=1)


def test_an_exclusive_end_is_the_instant_itself() -> None:
    end = NOW + timedelta(minutes=20)
    assert _until(policy(c("dateTime", "lt", _iso(end)))) == end


def test_a_date_ends_at_the_next_midnight_utc() -> None:
    late = datetime(2026, 6, 15, 23, 30, tzinfo=UTC)
    p = policy(c("dateTime", "lteq", {"@value": "2026-06-15", "@type": "xsd:date"}))
    assert permitted_until(p, ctx(now=late), Scope.TRANSFER, until=late + HOUR) == datetime(
        2026, 6, 16, tzinfo=UTC
    )


def test_an_end_beyond_the_limit_does_not_shorten_it() -> None:
    assert _until(policy(c("dateTime", "lt", _iso(NOW + 2 * HOUR)))) == UNTIL


def test_the_membership_it_was_checked_against_lapsing_ends_it() -> None:
    lapse = NOW + timedelta(minutes=5)
    assert _until(policy(MEMBER), credentials=(membership(valid_until=lapse),)) == lapse


def test_a_lapsing_credential_the_policy_does_not_need_changes_nothing() -> None:
    lapse = NOW + timedelta(minutes=5)
    p = policy(c("purpose", "eq", "research"))
    assert _until(p, credentials=(membership(valid_until=lapse),)) == UNTIL


def test_a_data_permit_lapsing_ends_it() -> None:
    lapse = NOW + timedelta(minutes=7)
    p = policy(c(PHEMS + "dataPermit", "eq", True))
    credentials = (permit(["urn:dataset:asthma"], valid_until=lapse),)
    assert _until(p, credentials=credentials) == lapse


def test_an_alternative_that_still_holds_keeps_it_permitted() -> None:
    # Either before 12:10, or a member (until 12:40): permitted until the membership lapses.
    p = policy(
        {
            "@type": "LogicalConstraint",
            "or": [c("dateTime", "lt", _iso(NOW + timedelta(minutes=10))), MEMBER],
        }
    )
    lapse = NOW + timedelta(minutes=40)
    assert _until(p, credentials=(membership(valid_until=lapse),)) == lapse


def test_a_prohibition_that_starts_later_ends_it() -> None:
    start = NOW + timedelta(minutes=30)
    p = validate_policy(
        offer(MEMBER)
        | {"prohibition": [{"action": "use", "constraint": [c("dateTime", "gteq", _iso(start))]}]}
    )
    assert _until(p) == start


@pytest.mark.parametrize("minutes", [-5, 0])
def test_instants_not_after_now_are_ignored(minutes: int) -> None:
    p = policy(c("dateTime", "gteq", _iso(NOW + timedelta(minutes=minutes))))
    assert _until(p) == UNTIL


def test_time_bounds_keeps_the_window_and_lets_the_rest_pass() -> None:
    end = NOW + timedelta(minutes=20)
    p = time_bounds(
        validate_policy(
            offer(
                MEMBER,
                {
                    "@type": "LogicalConstraint",
                    "or": [c("dateTime", "lt", _iso(end)), c("purpose", "eq", "research")],
                },
                c("dateTime", "lt", _iso(end + HOUR)),
            )
            | {
                "prohibition": [
                    {"action": "use", "constraint": [c("spatial", "eq", "US")]},
                    {"action": "use", "constraint": [c("dateTime", "gteq", _iso(end + HOUR))]},
                ]
            }
        )
    )
    bare = ctx(credentials=())  # no membership, no purpose, no location: none of it counts
    assert evaluate(p, bare, Scope.TRANSFER)
    # The `or` holds through its neutral purpose once its dateTime is past: the window is
    # the outer one, and the prohibition that starts with its end.
    assert permitted_until(p, bare, Scope.TRANSFER, until=NOW + 3 * HOUR) == end + HOUR
    late = ctx(credentials=(), now=end + HOUR)
    assert not evaluate(p, late, Scope.TRANSFER)
