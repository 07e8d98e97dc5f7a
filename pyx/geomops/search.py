"""Neighbor search ops (filled in by the search issue)."""
__all__ = []
