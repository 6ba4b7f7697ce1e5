"""Datasets, the sample corpus and the eval runner."""
