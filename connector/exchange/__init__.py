"""Contract negotiation and transfer as application services: the handlers that record
received messages, our replies, and the outbox loop that sends them (STYLE.md §3). They build
on the pure DSP core in ``connector.dsp`` and on the store in ``connector.dsp.store``."""
