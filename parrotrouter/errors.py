"""One exception tree for everything a client can be told, and the one envelope it is told in.

Every failure a request can meet is one of these classes. The HTTP layer turns them into
`{"error": {message, type, code, param, status}}` in one place (`api/errors.py`); upstream
failures become these classes in one place per boundary (`upstream/client.py` for transport,
each provider adapter for its own error bodies, by HTTP status and error type, never by text).
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

ECHO_LIMIT = 80  # characters of a caller's value an error message may quote


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """A caller-supplied value as an error message may quote it: at most `limit` characters,
    control characters escaped, so a 1 MB model name never comes back in a 1 MB message."""
    text = value if isinstance(value, str) else repr(value)
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii") if not text.isprintable() else text
    return f"{text}… ({cut} more characters)" if cut > 0 else text


class ParrotError(Exception):
    """Base of every client-visible error."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_server_error"
    type: ClassVar[str] = "api_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
                "status": self.status,
            }
        }

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        retry_after = self.retry_after
        if retry_after is not None and retry_after == retry_after:  # not NaN
            headers["Retry-After"] = str(int(-(-min(max(0.0, retry_after), 86400.0) // 1)))
        return headers


class InvalidRequest(ParrotError):
    status = 400
    code = "invalid_request"
    type = "invalid_request_error"


class UnsupportedModel(InvalidRequest):
    code = "unsupported_model"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class ContentFiltered(InvalidRequest):
    """The provider's content filter refused the prompt."""

    code = "content_filter"


class UnsupportedMediaType(InvalidRequest):
    status = 415


class RequestTooLarge(ParrotError):
    status = 413
    code = "request_too_large"
    type = "invalid_request_error"


class RequestTimeout(ParrotError):
    """The client did not send its request in time."""

    status = 408
    code = "request_timeout"
    type = "invalid_request_error"


class AuthenticationError(ParrotError):
    status = 401
    code = "invalid_api_key"
    type = "authentication_error"


class MissingApiKey(AuthenticationError):
    code = "missing_api_key"


class InvalidApiKey(AuthenticationError):
    code = "invalid_api_key"


class ExpiredApiKey(AuthenticationError):
    code = "expired_api_key"


class InsufficientCredits(ParrotError):
    status = 402
    code = "insufficient_credits"
    type = "insufficient_credits_error"


class PriceUnknown(ParrotError):
    """A key that holds credits asked for a model whose price is unknown: it could not be billed.

    402, not 400: the request is well formed (the master key may send it as is); what is missing
    is a price to bill the key's balance with, which only the operator can give."""

    status = 402
    code = "price_unknown"
    type = "billing_error"


class PermissionDenied(ParrotError):
    status = 403
    code = "permission_denied"
    type = "permission_error"


class NotFound(ParrotError):
    status = 404
    code = "not_found"
    type = "not_found_error"


class NoRoute(NotFound):
    """Routing filters left no deployment to try."""

    code = "no_route"


class MethodNotAllowed(ParrotError):
    status = 405
    code = "method_not_allowed"
    type = "invalid_request_error"


class RateLimitExceeded(ParrotError):
    status = 429
    code = "rate_limit_exceeded"
    type = "rate_limit_error"


class InternalServerError(ParrotError):
    pass


class ServiceUnavailable(ParrotError):
    status = 503
    code = "service_unavailable"
    type = "service_unavailable_error"


class ModelOverloaded(ServiceUnavailable):
    code = "model_overloaded"


class FailureKind(enum.StrEnum):
    """How an upstream failure is classified, once, where it is met. Routing decides by kind."""

    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    MODEL_OVERLOADED = "model_overloaded"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    CONTENT_FILTER = "content_filter"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    STREAM_PROTOCOL = "stream_protocol"
    CONNECTION = "connection"


class UpstreamFailure(ParrotError):
    """An upstream (provider) call failed. `kind` drives retries and failover."""

    status = 502
    code = "upstream_error"
    type = "upstream_error"
    kind: FailureKind = FailureKind.SERVER_ERROR

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind = FailureKind.SERVER_ERROR,
        upstream_status: int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, param=param, retry_after=retry_after)
        self.kind = kind
        self.upstream_status = upstream_status

    def to_client_error(self) -> ParrotError:
        """The error the client sees for this failure once no further attempt is made."""
        cls = _CLIENT_ERROR_BY_KIND.get(self.kind)
        if cls is None:
            return self
        err = cls(self.message, param=self.param, retry_after=self.retry_after)
        return err


class UpstreamTimeout(ParrotError):
    status = 504
    code = "timeout"
    type = "timeout_error"


class UpstreamRateLimited(RateLimitExceeded):
    pass


_CLIENT_ERROR_BY_KIND: dict[FailureKind, type[ParrotError]] = {
    FailureKind.RATE_LIMIT: UpstreamRateLimited,
    FailureKind.TIMEOUT: UpstreamTimeout,
    FailureKind.MODEL_OVERLOADED: ModelOverloaded,
    FailureKind.CONTEXT_LENGTH_EXCEEDED: ContextLengthExceeded,
    FailureKind.CONTENT_FILTER: ContentFiltered,
    FailureKind.BAD_REQUEST: InvalidRequest,
}


class ConfigError(Exception):
    """The configuration file (or environment) is not usable; lists every problem found."""

    def __init__(self, problems: list[str], source: str = "configuration") -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.source}: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)
