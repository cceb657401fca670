"""Fixed pieces of HTTP/1.1 the proxy says or strips: hop-by-hop headers, canned answers."""

from __future__ import annotations

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})

# Never forwarded as received: they describe one hop, or the proxy sets them itself.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"proxy-authenticate", b"proxy-authorization",
    b"x-forwarded-for", b"x-forwarded-proto",
})


def canned(status: int, reason: str, extra: str = "") -> bytes:
    """A complete small response that closes the connection (built once, sent many times)."""
    body = f"{status} {reason}\n".encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode() + body


BAD_REQUEST = canned(400, "Bad Request")
BAD_GATEWAY = canned(502, "Bad Gateway")
TIMEOUT = canned(408, "Request Timeout")


# A Connection header may not name these: dropping a framing header while the body is still
# forwarded is how requests get smuggled, and the proxy sets the others itself.
PROTECTED = frozenset({b"content-length", b"transfer-encoding", b"host"})


class ListedProtected(ValueError):
    """A Connection header names a header that must not be removed."""


def drop_listed(headers: list[bytes], tokens: bytes) -> list[bytes]:
    """Remove the headers named in a Connection header (they are hop-by-hop too).

    Raises ListedProtected when it names a framing header (or Host): such a request is
    ambiguous and must be refused, never forwarded with its framing stripped.
    """
    names = {t.strip() for t in tokens.split(b",")} - {b"close", b"keep-alive", b"upgrade", b""}
    if not names:
        return headers
    if names & PROTECTED:
        raise ListedProtected(b", ".join(sorted(names & PROTECTED)).decode("latin-1"))
    return [h for h in headers if h.split(b":", 1)[0].lower() not in names]
