"""Who may use the operators' paths: scripts with the key (`X-API-Key`), people with a session
cookie from `/ops/login` (orders.api.ops_session). OpsGate (orders.api.gates) checks either before
anything else; this dependency checks again where a route declares it, which is also how the
OpenAPI document learns of the security scheme."""

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from orders.api.dependencies import SettingsDep
from orders.api.gates import unauthorized

OPS_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="The operators' key")
OPS_PATHS = r"^/ops/|^/products/[^/]+/images$|^/metrics$"
OPEN_OPS_PATHS = r"^/ops/login$|^/ops/static/"  # the sign-in form and the pages' CSS and JS
OPS_PAGES = r"^/ops/dashboard(/|$)"  # HTML: without a session, the browser goes to sign in
OPS_FORMS = r"^/ops/log(in|out)$"  # urlencoded HTML forms


async def require_ops_key(
    request: Request, settings: SettingsDep, presented: Annotated[str | None, Depends(OPS_KEY)]
) -> str:
    if request.scope.get("state", {}).get("ops") == "session":
        return "ops"  # the gate read a valid session cookie (and its CSRF token, for changes)
    if not hmac.compare_digest((presented or "").encode(), settings.ops_api_key.encode()):
        raise unauthorized()
    return "ops"
