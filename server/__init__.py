"""The Nacrith REST service: ``create_app`` builds the FastAPI app, ``nacrith
serve`` runs it under uvicorn."""

from __future__ import annotations

from typing import Any

from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI loads only when the app is wanted, not when the CLI reads the settings' defaults.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
