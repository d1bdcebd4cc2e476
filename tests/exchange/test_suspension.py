"""Who suspended a transfer is recorded, so the provider can refuse a consumer's resume of a
transfer the provider suspended."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from connector.dsp.states import Role, TransferState
from connector.dsp.transfer import Transfer, apply
from connector.dsp.transfer_messages import TransferStartMessage, TransferSuspensionMessage

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_suspended_by_is_recorded_and_cleared_on_resume() -> None:
    t = Transfer.new(
        id="p1",
        role=Role.PROVIDER,
        counterparty_did="did:web:c",
        now=T0,
        provider_pid="p1",
        consumer_pid="c1",
    )
    t = replace(t, state=TransferState.STARTED)
    pids = {"providerPid": "p1", "consumerPid": "c1"}
    suspended = apply(
        t,
        TransferSuspensionMessage.model_validate(pids | {"code": "x"}),
        sender_role=Role.PROVIDER,
        now=T0,
    )
    assert suspended.state is TransferState.SUSPENDED
    assert suspended.suspended_by is Role.PROVIDER
    resumed = apply(
        suspended, TransferStartMessage.model_validate(pids), sender_role=Role.PROVIDER, now=T0
    )
    assert resumed.state is TransferState.STARTED and resumed.suspended_by is None
