"""Reference-compatible ``sam2.modeling.sam2_base``: ``SAM2Base`` is our :class:`SAM2Model`.

The reference's base class is the whole model; ours is composed of its parts and exposes
steps instead of the reference's private methods. The alias keeps imports and ``isinstance``
checks of third-party code working; code that calls ``SAM2Base``'s internals needs porting.
"""

from sam2.modeling.sam2_model import NO_OBJ_SCORE, SAM2Model

SAM2Base = SAM2Model

__all__ = ["NO_OBJ_SCORE", "SAM2Base"]
