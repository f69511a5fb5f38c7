"""Drift statistics: compare the live distribution of a model's inputs or outputs with a baseline.

Pure computation on bucket counts scraped from Prometheus histograms; nothing
here does I/O, so every number can be checked by hand in the tests.
"""
