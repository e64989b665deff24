"""Decoding a copy of a compressed body for capture, in bounded steps (the bytes forwarded are
never touched)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from .upstream import READ_SIZE

DECODABLE_ENCODINGS = (b"gzip", b"deflate", b"identity")
"""Content codings km can decode for its capture copy; the client's Accept-Encoding is narrowed to them."""


class ContentDecoder:
    """Decodes a copy of a ``Content-Encoding: gzip|deflate`` body for capture, in bounded steps:
    a small compressed chunk can inflate a thousandfold (a "gzip bomb")."""

    def __init__(self, encoding: bytes) -> None:
        wbits = zlib.MAX_WBITS | 16 if encoding in (b"gzip", b"x-gzip") else zlib.MAX_WBITS | 32
        self._z = zlib.decompressobj(wbits)

    def decode(self, data: bytes, max_length: int) -> bytes:
        """At most ``max_length`` decoded bytes of ``data``; input past them is dropped (the
        caller stops decoding there)."""
        try:
            return self._z.decompress(data, max_length)
        except zlib.error:
            return b""

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """All of ``data`` decoded, ``READ_SIZE`` bytes at a time (for streams)."""
        try:
            out = self._z.decompress(data, READ_SIZE)
            while True:
                yield out
                tail = self._z.unconsumed_tail
                if not tail:
                    return
                out = self._z.decompress(tail, READ_SIZE)
        except zlib.error:
            return


class _Identity:
    """The decoder of an uncompressed body: the bytes as they are."""

    def decode(self, data: bytes, max_length: int) -> bytes:
        return data

    def pieces(self, data: bytes) -> tuple[bytes]:
        return (data,)


IDENTITY = _Identity()


def content_decoder(encoding: bytes | None) -> ContentDecoder | _Identity | None:
    """None when the coding cannot be decoded (capture is skipped)."""
    if not encoding or encoding == b"identity":
        return IDENTITY
    if encoding in (b"gzip", b"x-gzip", b"deflate"):
        return ContentDecoder(encoding)
    return None


def narrow_accept_encoding(value: bytes) -> bytes:
    """The client's ``Accept-Encoding`` restricted to the codings km can decode."""
    parts = [part.strip() for part in value.split(b",")]
    kept = [part for part in parts if part.split(b";")[0].strip().lower() in DECODABLE_ENCODINGS]
    return b", ".join(kept) if kept else b"identity"
