"""Pallas kernels, each beside its pure-JAX reference (importable as ``jtoolformer.kernels``)."""
