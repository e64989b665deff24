"""The built dashboard's files (``/assets``): cached for good, compressed once.

Vite names each file by a hash of its content, so a browser may keep it a year without asking
again (a new build has new names, and ``index.html``, which names them, is ``no-cache``). The
script and the stylesheet go gzip-compressed to a browser that accepts it: the bundle is about
190 KB as built and 60 KB compressed, which a remote team's first load feels. Each file is
compressed the first time it is asked for and kept in memory (the directory holds a few files).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

IMMUTABLE = "public, max-age=31536000, immutable"
COMPRESSIBLE = (".js", ".css", ".svg", ".json", ".map")


class DashboardAssets(StaticFiles):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory)
        self._compressed: dict[tuple[str, float, int], bytes] = {}

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = IMMUTABLE
        path = str(full_path)
        if not path.endswith(COMPRESSIBLE):
            return response
        response.headers["vary"] = "Accept-Encoding"  # (both copies say so, for shared caches)
        request = Headers(scope=scope)
        if (
            response.status_code != 200
            or scope["method"] != "GET"
            or not _accepts_gzip(request.get("accept-encoding", ""))
        ):
            return response
        key = (path, stat_result.st_mtime, stat_result.st_size)
        body = self._compressed.get(key)
        if body is None:
            body = gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0)
            self._compressed[key] = body
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        # another representation, so another validator (and caches keep the two apart)
        headers["etag"] = headers["etag"].rstrip('"') + '-gz"'
        headers["content-encoding"] = "gzip"
        asked = request.get("if-none-match", "")
        if headers["etag"] in [t.strip().removeprefix("W/") for t in asked.split(",")]:
            return NotModifiedResponse(Headers(headers))
        return Response(body, headers=headers)


def _accepts_gzip(accept_encoding: str) -> bool:
    """``gzip`` listed, and not refused with ``q=0``."""
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.partition(";")
        if coding.strip() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False
