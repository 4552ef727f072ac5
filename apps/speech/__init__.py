"""Keyword spotting on a live audio stream: ``edgepilot listen``."""
