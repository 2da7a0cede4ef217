"""Our own PyTorch implementation of SAM 2 / SAM 2.1 (no napari, no Qt, no Hydra).

Shape glossary used throughout the package:
B batch (images or prompt sets), T frames, C channels, H×W feature-map size,
S model input size (1024 for released models), P points, M masks per prompt.
"""

__version__ = "0.1.0"
