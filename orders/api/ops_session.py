"""Operators in a browser: the ops key exchanged for a session cookie at `/ops/login`. The cookie
is signed (itsdangerous, with SECRET_KEY) and carries its CSRF token and when it was issued; it
is HttpOnly, SameSite=Strict, Secure over HTTPS, and expires after OPS_SESSION_HOURS. A request
that changes something with the cookie must send that token (`X-CSRF-Token`, or the form's
`csrf_token`). Scripts keep sending `X-API-Key`.

A wrong key gets the same answer every time and is counted; an address that keeps failing is
answered more and more slowly (per API process; a shared limit belongs in the proxy)."""

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from prometheus_client import Counter

COOKIE = "ops_session"
LOGIN_FAILURES = Counter("orders_ops_login_failures_total", "Sign-ins refused for a wrong key")


@dataclass(frozen=True)
class OpsSession:
    csrf: str


class Sessions:
    def __init__(self, secret_key: str, life_s: float) -> None:
        self.serializer = URLSafeTimedSerializer(secret_key, salt="ops-session")
        self.life_s = life_s

    def issue(self) -> str:
        return self.serializer.dumps({"csrf": secrets.token_urlsafe(24)})

    def read(self, cookie: str | None) -> OpsSession | None:
        if not cookie:
            return None
        try:
            data = self.serializer.loads(cookie, max_age=round(self.life_s))
        except BadSignature:  # tampered with, or expired (SignatureExpired is one)
            return None
        csrf = data.get("csrf") if isinstance(data, dict) else None
        return OpsSession(csrf) if isinstance(csrf, str) else None


def csrf_matches(session: OpsSession, presented: str | None) -> bool:
    return hmac.compare_digest(session.csrf.encode(), (presented or "").encode())


class Throttle:
    """Failed sign-ins per address in the last `window_s`: after `free` of them, each answer
    waits twice as long as the one before, up to `max_delay_s`."""

    def __init__(
        self, free: int = 3, window_s: float = 600, max_delay_s: float = 8, size: int = 10_000
    ) -> None:
        self.free, self.window_s, self.max_delay_s, self.size = free, window_s, max_delay_s, size
        self.failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> list[float]:
        recent = [t for t in self.failures.get(address, []) if now - t < self.window_s]
        if recent:
            self.failures[address] = recent
        else:
            self.failures.pop(address, None)
        return recent

    def delay_s(self, address: str) -> float:
        over = len(self._recent(address, time.monotonic())) - self.free
        return 0.0 if over < 0 else min(self.max_delay_s, 0.25 * 2**over)

    def failed(self, address: str) -> None:
        LOGIN_FAILURES.inc()
        now = time.monotonic()
        self.failures[address] = [*self._recent(address, now), now]
        self.failures.move_to_end(address)
        while len(self.failures) > self.size:  # bounded memory, whatever the addresses
            self.failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self.failures.pop(address, None)
