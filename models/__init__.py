"""Models shipped with the package: ``elysium-tiny/``, the default of ``elysium track``/``demo`` and the pipeline."""
