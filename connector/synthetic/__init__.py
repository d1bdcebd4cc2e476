"""Synthetic FHIR patients generated from a dataset's flat views (DESIGN.md §4, issue 21).

Needs the ``synthetic`` extra (SDV and friends); every heavy import is inside the modules
below, so importing ``connector`` never loads pandas, SDV or torch. What the rest of the
connector calls:

- ``generator.SdvGenerator(config, models_dir, node=...)``: the ``SyntheticGenerator`` port
  (``model_key``, ``fit``, ``sample``, ``report``, ``report_page``);
- ``generator.fit_job(views, settings, models_dir, progress)``: the long job (plain data in
  and out, for a worker process) returning the ``SyntheticModelRecord`` to store;
- ``fulfilment.SyntheticFulfilment(generator_for, store, clock)``: the ``Fulfilment`` of
  ``OutputType.SYNTHETIC`` (request format in its docstring);
- ``config.SyntheticConfig``: a dataset's synthetic settings (``config.stored_config``: the
  ones kept in the data directory);
- ``fits.SyntheticFits``: the ``synthetic-fit`` job a pull without a model starts (the
  composition root installs it with the fulfilment when SDV is importable);
- ``client.fetch`` and ``frames.bundle_frames`` / ``ndjson_frames``: the data user's side
  (``phems-connector synthetic fetch``; DataFrames one per resource type);

The pipeline: ``tables`` (flat views <-> training tables), ``backends`` (SDV) and ``aim``
(differential privacy), ``model`` (fit, evaluate, save; sample without exact copies),
``reports`` (quality, privacy, utility), ``fhir`` (resources, Bundle, NDJSON).
"""
