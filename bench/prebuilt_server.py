"""A FastAPI app on uvicorn that serves pre-built bytes (the baseline of bench_catalog --http).

`python bench/prebuilt_server.py PORT DIR`: every file `DIR/<name>` is served at `/<name>`
(GET and POST) with the media type in `DIR/<name>.type`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response


def build(directory: Path) -> FastAPI:
    app = FastAPI()
    for path in sorted(directory.iterdir()):
        if path.suffix == ".type":
            continue
        body, media = path.read_bytes(), path.with_suffix(".type").read_text().strip()

        async def serve(body: bytes = body, media: str = media) -> Response:
            return Response(body, media_type=media)

        app.add_api_route(f"/{path.name}", serve, methods=["GET", "POST"])
    return app


if __name__ == "__main__":
    port, directory = int(sys.argv[1]), Path(sys.argv[2])
    uvicorn.run(build(directory), host="127.0.0.1", port=port, log_level="warning")
