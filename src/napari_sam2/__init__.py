"""napari-sam2: SAM 2 / SAM 2.1 segmentation and tracking in napari.

The plugin side of the distribution. It talks to the ``sam2`` package only through its public
API and imports torch lazily, so that napari starts fast.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
