"""Video tracking internals: per-object memory banks, the typed session, the tracking step."""
