"""Harness that runs the reference ``sam2==1.1.0`` in a subprocess as a test oracle."""
