"""The address links in emails use (BASE_URL) against the address a server listens on.

Without BASE_URL, `serve` and gunicorn (gunicorn.conf.py) make their own address the base of links,
so `serve --port 5631` writes confirmation links to port 5631. With BASE_URL set, they keep it and
warn when it does not point at them (unless PROXY_FIX says a reverse proxy stands in between)."""
from __future__ import annotations

from urllib.parse import urlsplit

_LOCAL = {"127.0.0.1", "localhost", "::1", "[::1]"}
_ANY = {"0.0.0.0", "::", "", "[::]"}


def serving_url(host: str, port: int) -> str:
    """http://host:port/ as a visitor on this machine would type it (0.0.0.0 is 127.0.0.1)."""
    shown = "127.0.0.1" if host in _ANY else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def base_url_mismatch(base_url: str, host: str, port: int) -> str | None:
    """Why BASE_URL does not reach the server listening on host:port, or None when it does."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"BASE_URL={base_url!r} is not an http(s) address"
    base_port = parts.port or (443 if parts.scheme == "https" else 80)
    base_host = parts.hostname
    same_host = (base_host == host.strip("[]") or host in _ANY
                 or (base_host in _LOCAL and host.strip("[]") in _LOCAL))
    if same_host and base_port == port:
        return None
    return (f"BASE_URL is {base_url} but this server listens on {serving_url(host, port)}: links in emails "
            f"point at {base_url}")


def warn_text(base_url: str, host: str, port: int, *, proxied: bool) -> str | None:
    """The start-up warning about BASE_URL, or None (also None behind a declared proxy)."""
    if proxied:
        return None
    why = base_url_mismatch(base_url, host, port)
    if why is None:
        return None
    return (f"Warning: {why}. Unset BASE_URL to use this server's address, or set it to the address people "
            "reach Samiti at (behind a reverse proxy, also set PROXY_FIX=1).")
