"""The one Limiter and the plans: hourly API quotas resolved lazily per request."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter

from .auth import current_account


@dataclass(frozen=True)
class Plan:
    name: str
    hourly: int | None  # None: unlimited
    max_file: int
    bulk: int | None  # None: unlimited


def get_plan(name: str) -> Plan:
    spec = current_app.config["PLANS"][name]
    return Plan(name, spec["hourly"], spec["max_file"], spec["bulk"])


def current_plan() -> Plan:
    """Return the plan of the current caller (anonymous without a key)."""
    account = current_account()
    return get_plan(account.plan if account else "anonymous")


def quota_key() -> str:
    account = current_account()
    return f"account:{account.id}" if account else f"ip:{request.remote_addr}"


def hourly_limit() -> str:
    return f"{current_plan().hourly or 1} per hour"


def exempt_from_quota() -> bool:
    # Preflights carry no credentials and must not spend the quota.
    return request.method == "OPTIONS" or current_plan().hourly is None


def unlimited_caller() -> bool:
    """Tell whether the request's caller, already identified, has no hourly quota."""
    return "account" in g and current_plan().hourly is None


limiter = Limiter(key_func=quota_key)

# Applied to the whole API blueprint; one counter per caller across every endpoint.
api_quota = limiter.shared_limit(hourly_limit, scope="api", exempt_when=exempt_from_quota)


def init_app(app: Flask) -> None:
    # Registered before the limiter's own hook, so it runs after it: Flask-Limiter sets
    # Retry-After on every response, but it only means something on a 429.
    @app.after_request
    def _retry_after_only_when_refused(response: Response) -> Response:
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        return response

    limiter.init_app(app)
