"""The operators' key: scripts send it as `X-API-Key`."""

import hmac

from fastapi import Request

from orders.api.dependencies import SettingsDep
from orders.api.problems import Problem


async def require_ops_key(request: Request, settings: SettingsDep) -> str:
    presented = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(presented.encode(), settings.ops_api_key.encode()):
        raise Problem(
            401,
            "unauthorized",
            "API key required",
            "Send the operators' key in the X-API-Key header.",
            headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'},
        )
    return "ops"
