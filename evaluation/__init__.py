"""Batched generation, the field's metrics, and evaluation reports."""
