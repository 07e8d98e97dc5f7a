"""Continuous convolution ops (filled in by the cconv issue)."""
__all__ = []
