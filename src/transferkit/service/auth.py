"""Optional bearer-token auth: with a token set, every API route needs
``Authorization: Bearer <token>``; the health check and the page itself stay open."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from transferkit.errors import TransferkitError

bearer = HTTPBearer(auto_error=False, description="the token given to `transferkit serve "
                                                   "--token` (or TRANSFERKIT_TOKEN)")


class Unauthorized(TransferkitError):
    """The request carries no bearer token, or the wrong one."""


async def require_token(request: Request,
                        credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
                        ) -> None:
    """Compare in constant time, so the answer's timing says nothing about the token."""
    expected = request.app.state.token
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise Unauthorized("missing or wrong bearer token (Authorization: Bearer <token>)")


async def unauthorized(_request: Request, exc: Unauthorized) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})
