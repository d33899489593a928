"""The ASGI application, built from environment settings: `uvicorn app.main:app`."""

from app.factory import create_app

app = create_app()
