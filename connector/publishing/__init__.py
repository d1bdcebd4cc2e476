"""Publishing: the datasets this connector offers and its HealthDCAT-AP catalog, and the index
of what other connectors publish.

* ``records``: a dataset as stored (`DatasetRecord`) and the checks it passes first;
* ``store``: the datasets table, with the conditional update;
* ``datasets``: `DatasetService`, what the management API does to datasets (create, update,
  retire, refresh statistics, list), each change checked, stored and audited together;
* ``healthdcat``: a record <-> the HealthDCAT-AP model (`catalog.model`), and the SHACL check;
* ``statistics``: dataset statistics computed from the FHIR source, made safe;
* ``snapshot``: the published catalog as an in-memory snapshot that every catalog request reads;
* ``sample``: ``serve --with-sample-data`` (sample FHIR files and one example dataset);
* ``harvest``: other connectors' DSP catalogs harvested into one searchable index (data user).

Below ``connector.api``, beside ``connector.exchange``; it never imports the HTTP layer
(the layer contracts in ``pyproject.toml``).
"""
