"""Data sets: loaders, validation and the embedded synthetic data."""
