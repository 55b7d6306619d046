"""The version of pyrodps."""

__version__ = "0.1.0"
