"""Probing model replicas: which pods to ask, what to ask them, and asking thousands at once.

`targets` and `protocols` are pure (no HTTP client) so their rules are tested
without a network; `prober` does the I/O.
"""
