"""Stream sources as hh shows and stores them: never with their credentials. stdlib only.

A camera's stream URL often carries a password (rtsp://admin:PW@host/..., ?password=...).
Whatever hh prints, serves or writes about a source goes through `redact_url` first.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

REDACTED = "***"
# Query parameters whose values are credentials, by name (lower case), and name fragments.
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "pw",
        "token",
        "access_token",
        "auth",
        "authorization",
        "key",
        "apikey",
        "api_key",
        "secret",
        "signature",
        "sig",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "user_pass",
    }
)
SECRET_FRAGMENTS = ("pass", "token", "secret", "key", "auth", "sig", "cred")


def _is_secret_parameter(name: str) -> bool:
    name = name.lower()
    return name in SECRET_PARAMETERS or any(fragment in name for fragment in SECRET_FRAGMENTS)


def redact_url(source: str) -> str:
    """A stream URL with every credential replaced by ***: all of the userinfo (user and
    password, whatever characters they hold) and the values of query parameters whose names
    mean a secret (password, token, key, auth, signature, ...). Passwords never reach a log.

    The userinfo is everything between "://" and the last "@" before the query: that is where
    FFmpeg looks for it, and a password may itself hold "/", ":" or "@".
    """
    scheme, sep, rest = source.partition("://")
    if not sep:
        return source
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head, tail = rest[:cut], rest[cut:]
    at = head.rfind("@")
    if at >= 0:
        head = REDACTED + head[at:]
    query, hash_sign, fragment = tail.partition("#")
    if query.startswith("?"):
        query = "?" + _redact_parameters(query[1:])
    # A fragment can carry parameters too (OAuth's #access_token=...).
    return f"{scheme}://{head}{query}{hash_sign}{_redact_parameters(fragment)}"


def _redact_parameters(text: str) -> str:
    """name=value&... with the values of secret-named parameters replaced (others untouched)."""
    parts = []
    for piece in text.split("&"):
        name, eq, _ = piece.partition("=")
        decoded = parse_qsl(piece, keep_blank_values=True)
        decoded_name = decoded[0][0] if decoded else name
        parts.append(f"{name}={REDACTED}" if eq and _is_secret_parameter(decoded_name) else piece)
    return "&".join(parts)
