"""``phems-connector demo`` (docs/data-user.md): a data space on one machine.

processes.py  connector and FHIR server processes on loopback (started, waited for, stopped)
space.py      the authority's credentials, three hospitals and a data user
run.py        the data user's steps through the SDK, with rich tables and progress bars
"""
