"""Qt building blocks shared by the dock widgets (layer combos, model controls, layout).

The widgets themselves live with their feature: :mod:`napari_sam2.segment.widget` and
:mod:`napari_sam2.tracking.napari.widget`, :mod:`napari_sam2.fine_tune.widget`.
"""
