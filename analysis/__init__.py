"""phonehome's analysis library: sources -> decode -> classify -> findings -> reports."""

__version__ = "0.1.0"
