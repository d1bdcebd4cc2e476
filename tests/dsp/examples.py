"""The DSP 2025-1 example messages in ``data/`` (reproduced from the specification's examples,
in the compact form the 2025-1 context defines), keyed by file stem."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from connector.dsp import messages as m

DATA = Path(__file__).resolve().parent / "data"

EXAMPLE_TYPES: dict[str, type[m.DspMessage]] = {
    "catalog-request-message": m.CatalogRequestMessage,
    "dataset-request-message": m.DatasetRequestMessage,
    "catalog": m.Catalog,
    "dataset": m.Dataset,
    "catalog-error": m.CatalogError,
    "contract-request-message_initial": m.ContractRequestMessage,
    "contract-request-message": m.ContractRequestMessage,
    "contract-offer-message_initial": m.ContractOfferMessage,
    "contract-offer-message": m.ContractOfferMessage,
    "contract-agreement-message": m.ContractAgreementMessage,
    "contract-agreement-verification-message": m.ContractAgreementVerificationMessage,
    "contract-negotiation-event-message": m.ContractNegotiationEventMessage,
    "contract-negotiation-termination-message": m.ContractNegotiationTerminationMessage,
    "contract-negotiation": m.ContractNegotiation,
    "contract-negotiation-error": m.ContractNegotiationError,
    "transfer-request-message": m.TransferRequestMessage,
    "transfer-start-message": m.TransferStartMessage,
    "transfer-suspension-message": m.TransferSuspensionMessage,
    "transfer-completion-message": m.TransferCompletionMessage,
    "transfer-termination-message": m.TransferTerminationMessage,
    "transfer-process": m.TransferProcess,
    "transfer-error": m.TransferError,
}


def example(name: str) -> dict[str, Any]:
    """A fresh copy of the example ``name`` (tests may modify it)."""
    body: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(body)
