"""Placeholder: filled in by the pose issue."""
__all__ = []
