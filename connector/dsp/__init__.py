"""Dataspace Protocol 2025-1: the pure core (context, messages, state machines).

HTTP routes, persistence and the outbox are built on these modules elsewhere.
"""
