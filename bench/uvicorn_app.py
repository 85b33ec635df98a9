"""The baseline: the same FastAPI app (JWT, validation, group-committed PG transaction with the
outbox row, 202) served by plain uvicorn, without Ray. `uvicorn bench.uvicorn_app:app`."""

from __future__ import annotations

from serve_app.api import create_app

app = create_app(with_ray=False)
