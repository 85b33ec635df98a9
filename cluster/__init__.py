"""The composition root: the only Python module that imports every layer (actors, Serve app)."""
