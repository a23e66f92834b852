"""The operators' key: scripts send it as `X-API-Key`. OpsKeyGate (orders.api.gates) checks it
before anything else on the operators' paths; this dependency checks it again where a route
declares it, which is also how the OpenAPI document learns of the security scheme."""

import hmac
from typing import Annotated

from fastapi import Depends
from fastapi.security import APIKeyHeader

from orders.api.dependencies import SettingsDep
from orders.api.gates import unauthorized

OPS_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="The operators' key")
OPS_PATHS = r"^/ops/|^/products/[^/]+/images$|^/metrics$"


async def require_ops_key(
    settings: SettingsDep, presented: Annotated[str | None, Depends(OPS_KEY)]
) -> str:
    if not hmac.compare_digest((presented or "").encode(), settings.ops_api_key.encode()):
        raise unauthorized()
    return "ops"
