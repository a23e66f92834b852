"""Who may follow an order: whoever holds its access token, handed out in the 202. The token is
derived from the order id and the secret key, so only its hash is stored and a replayed 202 can
hand it out again."""

import base64
import hashlib
import hmac
import uuid

from sqlmodel import Session

from orders.models import Order


def access_token_for(order_id: uuid.UUID, secret_key: str) -> str:
    digest = hmac.new(secret_key.encode(), b"order-access:" + order_id.bytes, hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def hash_access_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def find_order(session: Session, order_id: uuid.UUID, token: str | None) -> Order | None:
    """The order if `token` is its access token; a wrong token looks like an unknown id."""
    order = session.get(Order, order_id)
    if order is None or token is None:
        return None
    if not hmac.compare_digest(order.access_token_hash, hash_access_token(token)):
        return None
    return order
