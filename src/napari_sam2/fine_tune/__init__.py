"""The fine-tuning feature: train a model on the user's own annotated stacks.

- :mod:`.run`: napari-free (``napari-sam2 train`` and the widget's worker): gather the
  data, train, keep the best checkpoint by validation click IoU;
- :mod:`.widget`: the dock widget "SAM 2 fine-tuning"; :mod:`.job` runs the training in a
  napari worker, :mod:`.training_data` turns (Image, Labels) layers into training stacks,
  :mod:`.plot` draws the live loss / IoU plot.

This package imports nothing on its own, so the command line never loads napari or Qt.
"""
