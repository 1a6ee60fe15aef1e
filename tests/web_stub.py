"""A small web server on 127.0.0.1 for URL and feed tests: pages, feeds that honour ETag and
Last-Modified, and the misbehaviours a crawler meets (errors, slowness, huge and odd bodies)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tests.http_stub import LocalServer, QuietHandler


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    delay_s: float = 0.0
    etag: str = ""
    last_modified: str = ""
    location: str = ""  # a redirect
    declare_length: bool = True  # False: chunked, with no Content-Length
    trickle_s: float = 0.0  # send the body a byte at a time, this long apart
    header_trickle_s: float = 0.0  # send the headers a byte at a time, this long apart (~60 s)
    headers: dict[str, str] = field(default_factory=dict)


class WebStub(LocalServer):
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[tuple[str, dict[str, str]]] = []
        stub = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                stub.hits.append((self.path, dict(self.headers)))
                r = stub.routes.get(self.path)
                if r is None:
                    return self._plain(404, b"not found")
                time.sleep(r.delay_s)
                if r.header_trickle_s:
                    return self._trickle_headers(r.header_trickle_s)
                if r.location:
                    self.send_response(r.status if r.status in (301, 302, 307, 308) else 302)
                    self.send_header("Location", r.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                fresh = (r.etag and self.headers.get("If-None-Match") == r.etag) or (
                    r.last_modified and self.headers.get("If-Modified-Since") == r.last_modified)
                if fresh:
                    self.send_response(304)
                    self.send_header("ETag", r.etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                self.send_response(r.status)
                self.send_header("Content-Type", r.content_type)
                for k, v in {"ETag": r.etag, "Last-Modified": r.last_modified,
                             **r.headers}.items():
                    if v:
                        self.send_header(k, v)
                try:
                    if r.trickle_s:
                        self.send_header("Content-Length", str(len(r.body)))
                        self.end_headers()
                        for i in range(len(r.body)):
                            self.wfile.write(r.body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(r.trickle_s)
                    elif r.declare_length:
                        self.send_header("Content-Length", str(len(r.body)))
                        self.end_headers()
                        self.wfile.write(r.body)
                    else:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        for i in range(0, len(r.body), 65536):
                            part = r.body[i:i + 65536]
                            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return None

            def _trickle_headers(self, every_s: float) -> None:
                """A status line, then one endless header, a byte at a time: each read gets
                a byte within any per-read timeout, and the headers never end."""
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    self.wfile.flush()
                    for _ in range(int(60 / every_s)):
                        time.sleep(every_s)
                        self.wfile.write(b"a")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def _plain(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._serve(Handler)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"



def page(title: str, body: str, date: str = "2022-02-14", author: str = "Mara Lind",
         site: str = "Newsbot Sample Wire") -> bytes:
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n") if p.strip())
    return f"""<!doctype html><html><head><title>{title} | {site}</title>
<meta property="og:title" content="{title}">
<meta property="og:site_name" content="{site}">
<meta name="author" content="{author}">
<meta property="article:published_time" content="{date}T09:00:00Z">
</head><body><nav>Home | World | Sport</nav><article><h1>{title}</h1>{paragraphs}</article>
<footer>Copyright Newsbot Sample Wire</footer></body></html>""".encode()


def rss(title: str, items: list[tuple[str, str, str, str]]) -> bytes:
    """items: (guid, link, title, description)."""
    entries = "".join(
        f"<item><guid>{g}</guid><link>{link}</link><title>{t}</title>"
        f"<description>{d}</description><pubDate>Mon, 14 Feb 2022 09:00:00 GMT</pubDate>"
        f"</item>" for g, link, t, d in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>http://example.invalid/</link><description>x</description>{entries}"
            f"</channel></rss>").encode()
