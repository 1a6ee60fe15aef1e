"""Fetching pages and feeds from the web, guarded: http(s) only, one deadline for the whole
fetch, one byte budget counted on the decoded body, a content-type check, capped redirects, and
no addresses on this host or in private ranges (SSRF) unless the operator allows them. Each hop
connects to the very address that was checked, so a DNS answer that changes between check and
connect (rebinding) cannot slip through."""

from __future__ import annotations

import codecs
import ipaddress
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

from retrieval.errors import NewsbotError

HTML_TYPES = ("text/html", "application/xhtml+xml")
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/xml", "text/xml",
              "application/rdf+xml", "application/feed+json")
TEXT_TYPES = ("text/plain",)
NOT_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape",
                          "rot-13", "base64", "hex", "zlib", "bz2", "quopri", "uu"})
USER_AGENT = "newsbot/0.1 (news question answering; +https://github.com/newsbot)"
MAX_URL_CHARS = 4096
GZIP = ("gzip", "x-gzip")


class FetchError(NewsbotError):
    """A URL that cannot or may not be fetched; the message says which and why."""


@dataclass(slots=True)
class Fetched:
    url: str  # after redirects
    status: int  # 200, or 304 when a conditional request found nothing new
    content_type: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        charset = "utf-8"
        for part in self.content_type.split(";")[1:]:
            k, _, v = part.strip().partition("=")
            if k.lower() == "charset" and v:
                charset = v.strip('"')
        try:
            if codecs.lookup(charset).name in NOT_CHARSETS:
                raise LookupError(charset)
            return self.body.decode(charset, errors="replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            # Unknown names, and codecs that are no charset of a web page (idna and punycode
            # encode host names, "undefined" always raises): read it as UTF-8.
            return self.body.decode("utf-8", errors="replace")


def validate_url(url: str) -> tuple[SplitResult, str, int]:
    """(parts, host, port) of an http(s) URL fit to fetch, or FetchError saying what is wrong
    with it: the scheme, the host, the port, a user name or password, spaces or control
    characters. Checked before any use, so a bad URL is one line, never a traceback."""
    if not isinstance(url, str) or not url.strip():
        raise FetchError("the URL is empty")
    if len(url) > MAX_URL_CHARS:
        raise FetchError(f"the URL is {len(url):,} characters; the limit is {MAX_URL_CHARS:,}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise FetchError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as e:  # "Invalid IPv6 URL", "Port out of range 0-65535"
        raise FetchError(f"not a valid URL ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        what = f"{parts.scheme}:" if parts.scheme else "a URL without a scheme"
        raise FetchError(f"only http and https URLs can be fetched, not {what}")
    if "@" in parts.netloc:
        # https://victim.example@evil.example/ reads as victim.example and goes to evil.
        raise FetchError("URLs with a user name or password (user@host) are refused")
    if not host:
        raise FetchError("the URL has no host")
    if port == 0:
        raise FetchError("the URL's port must be a number from 1 to 65535")
    return parts, host, port or (443 if scheme == "https" else 80)


def is_fetchable(url: str) -> bool:
    try:
        validate_url(url)
    except FetchError:
        return False
    return True


def _resolve(host: str, port: int, timeout_s: float | None = None) -> list[str]:
    """The host's addresses; a lookup that outlasts ``timeout_s`` is abandoned (its thread
    ends with the resolver's own timeout), so DNS counts against the fetch's deadline too."""
    try:
        ipaddress.ip_address(host.split("%")[0])
        literal = True
    except ValueError:
        literal = False
    out: dict[str, object] = {}

    def lookup() -> None:
        try:
            out["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            out["error"] = e

    if literal or timeout_s is None:
        lookup()
    else:
        t = threading.Thread(target=lookup, name="newsbot-dns", daemon=True)
        t.start()
        t.join(max(timeout_s, 0.0))
        if t.is_alive():
            raise FetchError(f"cannot resolve {host} within {timeout_s:g} s")
    if "error" in out:
        raise FetchError(f"cannot resolve {host}: {out['error']}") from None
    infos = out.get("infos") or []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # type: ignore[union-attr]


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_V4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
_V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT ::ffff:0:a.b.c.d


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and reaches (mapped, IPv4-compatible, SIIT,
    NAT64, 6to4), which is what must be judged."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if any(ip in net for net in (*_NAT64, _V4_COMPATIBLE, _V4_TRANSLATED)):
        if ip in _V4_COMPATIBLE and int(ip) <= 1:  # :: and ::1 are IPv6's own
            return None
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        v4 = embedded_ipv4(ip)
        if v4 is not None:
            ip = v4
    return ip.is_global and not ip.is_multicast


PRIVATE_HINT = ("such addresses are refused (an operator can allow them with "
                "NEWSBOT_ALLOW_PRIVATE_URLS=1)")


def check_url(url: str, allow_private: bool, timeout_s: float | None = None,
              hint: str = PRIVATE_HINT) -> tuple[str, str, int]:
    """(host, address to connect to, port) for a URL that may be fetched; FetchError if not."""
    _, host, port = validate_url(url)
    addresses = _resolve(host, port, timeout_s)
    if not addresses:
        raise FetchError(f"cannot resolve {host}: no address")
    if not allow_private:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise FetchError(f"{host} is on this machine or a private network ({private[0]}); "
                             f"{hint}")
    return host, addresses[0], port


def _deadline_transport(deadline: float):
    """An httpx transport whose every connect, TLS handshake, read and write waits at most
    until ``deadline``: httpx's own timeouts apply to each read, and a server trickling its
    headers (or body) a byte a second never trips them."""
    import httpcore
    import httpx

    def left(timeout: float | None, error: type[Exception]) -> float:
        """The time an operation may take: its own timeout, cut to what the deadline leaves."""
        rest = deadline - time.monotonic()
        if rest <= 0:
            raise error("the fetch's deadline has passed")
        return rest if timeout is None else min(timeout, rest)

    class Stream(httpcore.NetworkStream):
        def __init__(self, inner: httpcore.NetworkStream) -> None:
            self.inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self.inner.read(max_bytes, left(timeout, httpcore.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self.inner.write(buffer, left(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self.inner.close()

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            return Stream(self.inner.start_tls(ssl_context, server_hostname,
                                               left(timeout, httpcore.ConnectTimeout)))

        def get_extra_info(self, info: str):
            return self.inner.get_extra_info(info)

    class Backend(httpcore.SyncBackend):
        def connect_tcp(self, host, port, timeout=None, local_address=None,
                        socket_options=None):
            return Stream(super().connect_tcp(host, port,
                                              left(timeout, httpcore.ConnectTimeout),
                                              local_address, socket_options))

    transport = httpx.HTTPTransport(trust_env=False)
    # HTTPTransport takes no network backend; its pool is rebuilt around one that knows the
    # deadline (tests/test_network_security.py fails loudly should httpx rename it).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=Backend())
    return transport


def fetch(
    url: str, *, allow_private: bool, timeout_s: float, max_bytes: int, max_redirects: int,
    accept: tuple[str, ...], etag: str = "", last_modified: str = "",
    private_hint: str = PRIVATE_HINT,
) -> Fetched:
    """GET ``url`` within the limits; a 304 comes back as ``status=304`` with no body.
    ``allow_private`` covers the host of ``url`` only: a redirect to another host always
    passes the public guard (that host was chosen by the server, not by the operator)."""
    import httpx

    headers = {"User-Agent": USER_AGENT, "Accept": ", ".join(accept) + ", */*;q=0.1",
               "Accept-Encoding": "gzip"}  # decoded here, within the byte budget
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    # timeout_s bounds the whole fetch: DNS, connect, headers, each redirect and the body.
    deadline = time.monotonic() + timeout_s
    _, first_host, first_port = validate_url(url)
    typed = (first_host.lower(), first_port)
    with httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                      trust_env=False, transport=_deadline_transport(deadline)) as client:
        for _ in range(max_redirects + 1):
            _, host, port = validate_url(url)
            allow = allow_private and (host.lower(), port) == typed
            hint = private_hint if allow == allow_private else (
                "a redirect there is refused (the operator's allowance covers only the host "
                "of the URL given)")
            left = deadline - time.monotonic()
            if left <= 0:  # spent before this hop's host was even asked (a loaded machine)
                raise FetchError(f"{host} did not answer within {timeout_s:g} s")
            host, address, port = check_url(url, allow, left, hint)
            parts = urlsplit(url)
            literal = f"[{address}]" if ":" in address else address
            pinned = urlunsplit((parts.scheme.lower(), f"{literal}:{port}", parts.path or "/",
                                 parts.query, ""))
            default_port = port == (443 if parts.scheme.lower() == "https" else 80)
            answered = False
            try:
                with client.stream("GET", pinned, headers={
                        **headers, "Host": host if default_port else f"{host}:{port}"},
                        extensions={"sni_hostname": host}) as r:
                    answered = True
                    if r.status_code in (301, 302, 303, 307, 308) and "location" in r.headers:
                        url = urljoin(url, r.headers["location"])
                        validate_url(url)
                        continue
                    return _read(url, r, accept, max_bytes, deadline, timeout_s)
            except httpx.TimeoutException:
                if answered:
                    raise FetchError(f"{url} did not finish within {timeout_s:g} s") from None
                raise FetchError(f"{host} did not answer within {timeout_s:g} s") from None
            except (httpx.HTTPError, httpx.InvalidURL) as e:
                raise FetchError(f"cannot fetch {url}: {type(e).__name__}") from None
        raise FetchError(f"more than {max_redirects} redirects from {url}")


def _encoding(url: str, r) -> str:
    """The body's one content coding: "" or "gzip"; anything else is refused, before a byte
    of it is decoded (zstd, br and stacked codings can expand a few KB to gigabytes)."""
    codings = [c.strip().lower() for c in r.headers.get("content-encoding", "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > 1:
        raise FetchError(f"{url} is sent with stacked encodings ({', '.join(codings)}); only "
                         "gzip or none is accepted")
    if codings and codings[0] not in GZIP:
        raise FetchError(f"{url} is sent with Content-Encoding {codings[0][:40]}; only gzip "
                         "or none is accepted")
    return "gzip" if codings else ""


def _read(url: str, r, accept: tuple[str, ...], max_bytes: int, deadline: float,
          timeout_s: float) -> Fetched:
    if r.status_code == 304:
        return Fetched(url, 304, headers=dict(r.headers))
    if r.status_code != 200:
        raise FetchError(f"{url} answered HTTP {r.status_code}")
    ctype = r.headers.get("content-type", "")
    if not ctype.split(";")[0].strip().lower().startswith(accept):
        raise FetchError(f"{url} is {ctype.split(';')[0] or 'of no stated type'}, not "
                         f"{' or '.join(accept)}")
    declared = r.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"{url} is {int(declared):,} bytes; the limit is {max_bytes:,}")
    gzip = _encoding(url, r) == "gzip"
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    over = FetchError(f"{url} is over the {max_bytes:,}-byte limit")
    body, received = bytearray(), 0
    for chunk in r.iter_raw():  # as sent: decoded here, never by httpx in one piece
        received += len(chunk)
        if received > max_bytes:  # a server may send more than it declared
            raise over
        if not gzip:
            body += chunk
        while gzip and chunk:
            try:
                # At most one byte past the budget is ever produced from any input.
                body += inflate.decompress(chunk, max_bytes + 1 - len(body))
            except zlib.error:
                raise FetchError(f"{url} is not valid gzip") from None
            if len(body) > max_bytes:
                raise over
            if inflate.eof:  # a next gzip member, if any
                chunk = inflate.unused_data
                inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                chunk = inflate.unconsumed_tail
        if time.monotonic() > deadline:
            raise FetchError(f"{url} did not finish within {timeout_s:g} s")
    return Fetched(url, 200, ctype, bytes(body), dict(r.headers))
