"""The frames ``km monitor`` hands its chunks over in, to its recorder process or to the agent:
``<kind:u8><n:i64><length:u32><data>``. Lean on purpose: the relay imports it before it
forwards its first byte."""

from __future__ import annotations

import struct

from .directions import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Direction

FRAME = struct.Struct("<BqI")
KIND_C2S, KIND_S2C, KIND_END, KIND_INIT = 0, 1, 2, 3
"""Chunks each way (``n``: the time they were read, in ns), the end of the session (data: the
exit status in decimal, or empty) and the first frame (what the receiver needs to record)."""
KINDS: dict[str, int] = {CLIENT_TO_SERVER: KIND_C2S, SERVER_TO_CLIENT: KIND_S2C}
DIRECTIONS: dict[int, Direction] = {KIND_C2S: CLIENT_TO_SERVER, KIND_S2C: SERVER_TO_CLIENT}
