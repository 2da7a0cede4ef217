"""SAM 2 model components, one per module, named after the checkpoint's key tree."""
