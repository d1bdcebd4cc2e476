"""Dataspace Protocol 2025-1: the pure core. No HTTP, database or crypto in here.

- ``context``: the bundled 2025-1 JSON-LD context (never fetched) and the lenient reader that
  turns prefixed / expanded / plain-JSON forms into the compact form.
- ``messages``: ``parse_message`` / ``parse_any`` / ``dump`` and every message model
  (defined in ``catalog_messages``, ``negotiation_messages``, ``transfer_messages``).
- ``process``: what both processes share: the transition-table ``StateMachine``, the
  ``Process`` record's pids, ACKs, abandonment, and repeats (fingerprints of received messages).
- ``negotiation`` / ``transfer``: the two state machines, one transition table each, and the
  immutable ``Negotiation`` / ``Transfer`` records with a pure ``apply``.
- ``agreement``: a signed agreement as either party keeps it (``AgreementRecord``).
- ``policy_shape``: minimal structural checks of ODRL Offer / Agreement dicts.
- ``error_bodies``: ContractNegotiationError / TransferError / CatalogError for our exceptions.
- ``urls``: callback address validation and joining.

The DSP routes (``connector.api.dsp_routes``), the services and the outbox loop
(``connector.exchange``) and the stores (``connector.db``) build on these; nothing here
imports them (``tests/dsp/test_purity.py``).
"""
