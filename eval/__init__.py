"""Quality evaluation: generated media whose truth is known by construction, and
one command (``python -m eval.run``) that scores Reelscope and the standalone tools
on it side by side."""
