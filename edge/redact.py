"""Frame sources as hh shows and stores them: rebuilt from their parts, never with a secret.

A camera's stream URL often carries credentials, and in more places than a list of names can
cover: `rtsp://admin:PW@host/...`, `?password=PW`, `?loginuse=admin&loginpas=PW` (cheap IP
cameras), `?psw=PW`, `/user=admin&password=PW&channel=1` in the path (XMEye), a password that
itself holds `#`, `?`, `/` or `@`, a token in the fragment. So nothing hh shows or stores of a
source (terminal, --json, the record, the live view's API and page, the collection journal,
error lines) is the typed string with known names blanked. It is rebuilt from the parsed parts
that are safe to show, the scheme, host and port and the path's plain segments:

    rtsp://admin:PW@10.0.0.5:554/live              ->  rtsp://***@10.0.0.5:554/live
    http://cam/videostream.cgi?user=a&pwd=PW       ->  http://cam/videostream.cgi?user=***&pwd=***
    rtsp://cam:554/user=admin&password=PW&ch=1     ->  rtsp://cam:554/user=***&password=***&ch=***

Every query and fragment value is left out, and so is any path segment value after `=`.
Anything that does not parse as such a part is shown as `***`. `secrets_of` gives the typed
pieces that were left out, so text hh does not write itself (an OpenCV or FFmpeg message that
quotes the URL) can be scrubbed too (`scrub`).
"""

from __future__ import annotations

import re
from pathlib import Path

REDACTED = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)(:\d{1,5})?")
# Names and path segments shown as they are: words of at most 12 characters joined by . _ -
# (live, videostream.cgi, h264Preview_01_main, X-Amz-Credential), unless the whole looks
# random (_looks_random). A longer run of letters or digits is a key's or a token's hiding
# place. (Matched whole: fullmatch, never $, which would let a trailing newline through.)
_WORDS = re.compile(r"(?:[A-Za-z0-9]{1,12}(?:[._~-][A-Za-z0-9]{1,12}){0,5})?")


def describe_source(source: str) -> str:
    """A --source as every output shows it: a camera, a file, or a URL without its secrets."""
    if source == "picamera2":
        return "Raspberry Pi camera (picamera2)"
    if source.isdigit():
        return f"camera {source}"
    if "://" in source:
        return redact_url(source)
    if any(c in source for c in "@?=#:") and not _exists(source):
        # A URL whose scheme was forgotten (admin:PW@host/live, cam/video?pwd=PW): read it as one.
        return redact_url("hh://" + source).removeprefix("hh://")
    return _printable(source)


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    except (OSError, ValueError):  # too long a name, a NUL byte: not a file hh can open anyway
        return False


def redact_url(url: str) -> str:
    """A URL rebuilt from its safe parts: scheme, host, port, plain path segments, and the
    names (never the values) of its query and fragment parameters."""
    if "://" not in url:
        return describe_source(url)
    scheme, _, rest = url.partition("://")
    scheme = scheme if _SCHEME.fullmatch(scheme) else REDACTED
    authority_end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    if "@" in rest[authority_end:]:
        # An "@" after the host: a password holding "/", "?" or "#", or an "@" in a path or a
        # value. Which part is the password cannot be known, so no part is shown.
        return f"{scheme}://{REDACTED}"
    userinfo, at, host_and_rest = rest.rpartition("@")
    return f"{scheme}://{REDACTED + '@' if at else ''}{_safe_tail(host_and_rest)}"


def _safe_tail(rest: str) -> str:
    """host[:port][/path][?query][#fragment], each part shown only as far as it is safe."""
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    host, rest = rest[:cut], rest[cut:]
    shown = host if _HOST.fullmatch(host) else REDACTED
    rest, hash_sign, fragment = rest.partition("#")
    path, question, query = rest.partition("?")
    if path:
        shown += "/".join(_safe_segment(segment) for segment in path.split("/"))
    if question:
        shown += "?" + _names_only(query)
    if hash_sign:
        shown += "#" + _names_only(fragment)
    return shown


def _plain_words(text: str) -> bool:
    return _WORDS.fullmatch(text) is not None and not _looks_random(text)


# A secret split into short pieces (a UUID, sk-Zx81Qp02Lm77-Ab3dEf9hIj0K) passes the word rule
# piece by piece; as a whole it is long and changes between lower case, upper case and digits
# every few characters, where names (h264Preview_01_main, X-Amz-Credential) change a few times.
_CLASS_RUNS = re.compile(r"[a-z]+|[A-Z]+|[0-9]+")
RANDOM_MIN_LENGTH = 12
RANDOM_MIN_RUNS = 8


def _looks_random(text: str) -> bool:
    """Whether a name or segment, its separators left out, is long and switches character
    class as often as a key or a token does."""
    runs = _CLASS_RUNS.findall(text)
    return sum(map(len, runs)) >= RANDOM_MIN_LENGTH and len(runs) >= RANDOM_MIN_RUNS


def _safe_segment(segment: str) -> str:
    if _plain_words(segment):
        return segment
    if "=" in segment:  # user=admin&password=PW inside the path: names kept, values not
        return _names_only(segment)
    return REDACTED


def _names_only(text: str) -> str:
    """name=value pairs (split at & or ;, which are kept) with every value replaced, and any
    name that does not look like one."""
    shown = []
    for piece in re.split(r"([&;])", text):
        if piece in ("&", ";", ""):
            shown.append(piece)
            continue
        name, eq, _ = piece.partition("=")
        if not eq:  # a bare piece (?Zz9KEY1234, #token) is a value, not a name
            shown.append(REDACTED)
            continue
        shown.append(f"{name if name and _plain_words(name) else REDACTED}={REDACTED}")
    return "".join(shown)


def _printable(text: str) -> str:
    """A file path as typed, with control characters (a newline in a log line) made visible."""
    return "".join(c if c.isprintable() else "?" for c in text)


def secrets_of(source: str) -> list[str]:
    """The pieces of a source that its description leaves out (userinfo, values), longest
    first: what `scrub` removes from text hh did not write itself."""
    if "://" not in source and "@" not in source:
        return []
    description = describe_source(source)
    pieces = set()
    head = source.partition("://")[2] if "://" in source else source
    userinfo, at, tail = head.rpartition("@")
    if at:
        pieces.add(userinfo)
        pieces.update(p for p in re.split(r"[:@]", userinfo) if p)
    for pair in re.findall(r"[^&;#?/=]*=[^&;#?/]+", tail):
        pieces.add(pair)  # name=value: long enough to scrub safely even when the value is short
        pieces.add(pair.partition("=")[2])
    # Path segments and names shown as *** (a token in the path, a random-looking name).
    pieces.update(piece for piece in re.split(r"[/?#&;=]", tail) if piece and not _plain_words(piece))
    pieces.add(source)
    # Pieces that the description shows anyway (a host name, "1") are not secrets.
    return sorted((p for p in pieces if len(p) >= 3 and p not in description), key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    """`text` with every secret (and its percent-encoded form) replaced by ***."""
    from urllib.parse import quote, unquote

    for secret in secrets:
        for form in {secret, quote(secret, safe=""), unquote(secret)}:
            if form:
                text = text.replace(form, REDACTED)
    return text
