"""Reelscope: link in; metadata, scenes, key frames, on-screen text and speech out."""

from __future__ import annotations

__version__ = "0.1.0"
