"""Sliding-window prediction and writing of outputs."""
