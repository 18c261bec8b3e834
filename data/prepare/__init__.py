"""Offline preparation (`python -m data.prepare`): tfds datasets built from their official archives
(archives.py), and pre-resized copies whose training images are at most N px (shrink.py)."""
from data.prepare.archives import ARCHIVES, how_to_prepare, prepare

__all__ = ["ARCHIVES", "how_to_prepare", "prepare"]
