"""The segment feature: clicks and boxes on a slice, propagation through a stack.

Its napari side is the dock widget (:mod:`~napari_sam2.segment.widget`) and one controller per
image (:mod:`~napari_sam2.segment.controller`); the planning (:mod:`~napari_sam2.segment.
propagation`) is napari-free, so the headless replay shares it. This package imports nothing
on its own, so importing the napari-free modules never loads napari.
"""
