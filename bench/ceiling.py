"""The ceiling: a trivial FastAPI endpoint served exactly like the services (pinstack_kit.serve:
uvicorn, uvloop, httptools, one process), so `make bench` shows what the framework alone costs on this machine."""

from fastapi import FastAPI
from starlette.responses import Response


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> Response:
        return Response(b'{"status":200,"data":{"pong":true}}', media_type="application/json")

    return app
