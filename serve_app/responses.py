"""The API's JSON response class."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class JsonResponse(JSONResponse):
    """JSON rendered by orjson. FastAPI's `ORJSONResponse` does the same but is deprecated:
    every instance went through a warning wrapper, on every request of the accept path."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
