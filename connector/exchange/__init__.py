"""Contract negotiation and transfer as application services: the handlers that record
received messages and our replies, the steps the outbox loop takes after an answer, and the
outbox loop that takes them and sends (STYLE.md §3). They build on the pure DSP core in
``connector.dsp`` and on the stores of ``ports`` (SQL implementations in ``connector.db``)."""
