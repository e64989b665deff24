"""Forwarding the local store to a team server: the uploader (library) and its sink (``km monitor``).

``kilometers.sync.uploader`` imports httpx; import it only where uploads happen.
"""

from __future__ import annotations

from .sink import UploaderSink

__all__ = ["UploaderSink"]
