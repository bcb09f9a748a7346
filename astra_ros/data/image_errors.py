"""The error of every image conversion, raw (``data/images.py``) or compressed (``data/compressed.py``),
in a module of its own so that both converters raise it without importing each other."""

from __future__ import annotations


class ImageFormatError(ValueError):
    """An image message that cannot be converted to RGB; ``reason`` is the counter key."""

    def __init__(self, message: str, reason: str = "image_encoding"):
        super().__init__(message)
        self.reason = reason
