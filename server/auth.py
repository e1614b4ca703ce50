"""The optional API key: when the server has one, requests carry it in X-API-Key."""

from __future__ import annotations

import secrets

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from .errors import ApiError

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's API key")


async def require_key(request: Request, key: str | None = Security(api_key_header)) -> None:
    """401 unless the key matches (compared in constant time); nothing to check without one."""
    expected: str | None = request.app.state.service.settings.api_key
    if expected is None:
        return
    if key is None:
        raise ApiError("Unauthorized", "missing X-API-Key header", {"WWW-Authenticate": "ApiKey"})
    if not secrets.compare_digest(key.encode(), expected.encode()):
        raise ApiError("Unauthorized", "wrong API key", {"WWW-Authenticate": "ApiKey"})
