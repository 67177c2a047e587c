"""Backends: the shared Python-source printer, the runtime helpers, loaders."""
