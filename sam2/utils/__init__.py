"""The reference's ``sam2.utils`` import paths, as thin adapters of our modules.

Third-party SAM 2 code imports helpers from ``sam2.utils.misc``, ``sam2.utils.amg`` and
``sam2.utils.transforms``. These modules keep those imports working with the reference's
signatures and return conventions; the code behind them lives in :mod:`sam2.postprocess`,
:mod:`sam2.connected_components`, :mod:`sam2.frames`, :mod:`sam2.amg` and
:mod:`sam2.transforms`. New code should import from there.
"""
