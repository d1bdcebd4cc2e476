"""Synthetic FHIR patients generated from a dataset's flat views (DESIGN.md §4, issue 21).

Needs the ``synthetic`` extra (SDV and friends); every heavy import is inside the modules
below, so importing ``connector`` never loads pandas, SDV or torch. What the rest of the
connector calls:

- ``generator.SdvGenerator(config, models_dir)``: the ``SyntheticGenerator`` port
  (``model_key``, ``fit``, ``sample``, ``report``, ``report_page``);
- ``generator.fit_job(views, settings, models_dir, progress)``: the long job (plain data in
  and out, for a worker process) returning the ``SyntheticModelRecord`` to store;
- ``fulfilment.SyntheticFulfilment(generator_for, store, clock)``: the ``Fulfilment`` of
  ``OutputType.SYNTHETIC`` (request format in its docstring);
- ``config.SyntheticConfig``: a dataset's synthetic settings;

The pipeline: ``tables`` (flat views <-> training tables), ``backends`` (SDV) and ``aim``
(differential privacy), ``model`` (fit, evaluate, save; sample without exact copies),
``reports`` (quality, privacy, utility), ``fhir`` (resources, Bundle, NDJSON).
"""
