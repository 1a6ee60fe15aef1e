"""Fetching pages and feeds from the web, guarded: http(s) only, timeouts, a size limit, a
content-type check, capped redirects, and no addresses on this host or in private ranges
(SSRF) unless the operator allows them. Each hop connects to the very address that was checked,
so a DNS answer that changes between check and connect (rebinding) cannot slip through."""

from __future__ import annotations

import codecs
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

from retrieval.errors import NewsbotError

HTML_TYPES = ("text/html", "application/xhtml+xml")
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/xml", "text/xml",
              "application/rdf+xml", "application/feed+json")
TEXT_TYPES = ("text/plain",)
NOT_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape",
                          "rot-13", "base64", "hex", "zlib", "bz2", "quopri", "uu"})
USER_AGENT = "newsbot/0.1 (news question answering; +https://github.com/newsbot)"


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


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise FetchError(f"cannot resolve {host}: {e}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


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


def check_url(url: str, allow_private: bool) -> tuple[str, str, int]:
    """(host, address to connect to, port) for a URL that may be fetched; FetchError if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        what = f"{parts.scheme}:" if parts.scheme else "a URL without a scheme"
        raise FetchError(f"only http and https URLs can be fetched, not {what}")
    host = parts.hostname
    if not host:
        raise FetchError("the URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not allow_private:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise FetchError(f"{host} is on this machine or a private network ({private[0]}); "
                             "such addresses are refused (an operator can allow them with "
                             "NEWSBOT_ALLOW_PRIVATE_URLS=1)")
    return host, addresses[0], port


def fetch(
    url: str, *, allow_private: bool, timeout_s: float, max_bytes: int, max_redirects: int,
    accept: tuple[str, ...], etag: str = "", last_modified: str = "",
) -> Fetched:
    """GET ``url`` within the limits; a 304 comes back as ``status=304`` with no body."""
    import httpx

    headers = {"User-Agent": USER_AGENT, "Accept": ", ".join(accept) + ", */*;q=0.1"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    # timeout_s bounds the whole fetch, redirects and body included: httpx's own timeouts
    # apply to each read, and a server trickling a byte a second never trips them.
    deadline = time.monotonic() + timeout_s
    timeout = httpx.Timeout(timeout_s)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(max_redirects + 1):
            host, address, port = check_url(url, allow_private)
            parts = urlsplit(url)
            literal = f"[{address}]" if ":" in address else address
            pinned = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/",
                                 parts.query, ""))
            default_port = port == (443 if parts.scheme == "https" else 80)
            try:
                with client.stream("GET", pinned, headers={
                        **headers, "Host": host if default_port else f"{host}:{port}"},
                        extensions={"sni_hostname": host}) as r:
                    if r.status_code in (301, 302, 303, 307, 308) and "location" in r.headers:
                        url = urljoin(url, r.headers["location"])
                        continue
                    return _read(url, r, accept, max_bytes, deadline, timeout_s)
            except httpx.TimeoutException:
                raise FetchError(f"{host} did not answer within {timeout_s:g} s") from None
            except httpx.HTTPError as e:
                raise FetchError(f"cannot fetch {url}: {type(e).__name__}") from None
        raise FetchError(f"more than {max_redirects} redirects from {url}")


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
    body = bytearray()
    for chunk in r.iter_bytes():
        body += chunk
        if len(body) > max_bytes:  # a server may send more than it declared
            raise FetchError(f"{url} is over the {max_bytes:,}-byte limit")
        if time.monotonic() > deadline:
            raise FetchError(f"{url} did not finish within {timeout_s:g} s")
    return Fetched(url, 200, ctype, bytes(body), dict(r.headers))
