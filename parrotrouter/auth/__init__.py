"""Who is calling and what they may do. The HTTP layer hands over the bearer token; this package
answers with a `Principal` or raises a 401/403 error. No database round trip per request."""

from .principal import Authenticator, MasterKeyAuthenticator, Principal

__all__ = ["Authenticator", "MasterKeyAuthenticator", "Principal"]
