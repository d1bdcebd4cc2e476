"""Federated aggregate queries (DESIGN.md §4): one query to many hospitals, combined.

The cell codec of aggregate queries is ``connector.fulfilment.aggregate.codec``; a hospital's
side of a secure round runs in the aggregate fulfilment (``hospital.py`` is what it calls).

secure.py       pairwise-mask secure aggregation (phems-secagg-1), pure; the privacy argument
wire.py         the secure-mode request member and the share a hospital answers
hospital.py     a hospital's side of a secure round (its peers' keys from their DID documents)
noise.py        OpenDP discrete Laplace noise for integer vectors (the aggregate fulfilment draws
                its own, connector/fulfilment/aggregate/noise.py)
ports.py        what the coordinator needs: hospital directory, query channel, cell codec
rules.py        the MII rules on a combined answer (no result under 20, breakdown rule)
coordinator.py  asks the hospitals concurrently and combines their answers, plain or secure
directory.py    which hospitals to ask: the aggregate agreements held as consumer, or those named
negotiate.py    negotiating first where needed: an agreement for a hospital named without one
agreements.py   the agreements this connector holds as consumer (the directory's source)
channel.py      asking one hospital: through its data plane under a STARTED aggregate transfer
service.py      what POST /management/queries calls; its body and answer models
frame.py        a combined answer as a pandas DataFrame (pandas imported on first use)
cli.py          phems-connector query run (through the data user SDK, connector.sdk)
"""
