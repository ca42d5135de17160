"""Durable activities, one module per capability. Heavy libraries are imported here,
never from ``workflows/``."""
