"""Security regressions, the network side (issue 22), each reproduced as it was found against
servers on 127.0.0.1: compressed bodies that expand to gigabytes, headers trickled past the
deadline, feed items that link to private hosts, symlinks out of an ingested directory, HTML
that costs minutes to parse, and URLs that crashed whole runs. Each is refused with one line in
the report, and the rest of the run goes on."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time

import pytest

from retrieval.fetch import FetchError, fetch, validate_url
from tests.conftest import ROOT, write
from tests.web_stub import Route, WebStub, page, rss

BODY = ("The harbour authority in Kiel said on Monday that ferry services would resume on "
        "Wednesday after the strike ended. ") * 3
GOOD = ("Harbour ferry strike\nKiel. March 3. NEWSBOT SAMPLE WIRE - The harbour ferry crews in "
        "Kiel went on strike over rosters on Thursday.\n")
SECRET = "DISCORD_TOKEN=MTIz.not-a-real-token\nNEWSBOT_LLM_API_KEY=sk-not-a-real-key\n"


@pytest.fixture
def web():
    stub = WebStub().start()
    yield stub
    stub.stop()


def get(url: str, **limits):
    options = {"allow_private": True, "timeout_s": 5, "max_bytes": 200_000,
               "max_redirects": 3, "accept": ("text/html",), **limits}
    return fetch(url, **options)


def refusal(url: str, **limits) -> str:
    with pytest.raises(FetchError) as e:
        get(url, **limits)
    return str(e.value)


# -- one byte budget, counted on the decoded body ----------------------------------------------
def _gzip_members(total: int, block: int = 1 << 24) -> bytes:
    """``total`` bytes of zeros as a multi-member gzip: each member one compressed block."""
    member = gzip.compress(b"\0" * block, compresslevel=9)
    return member * (total // block)


def test_compressed_bombs_are_refused_under_a_memory_limit(web):
    """Each body expands to 1 GiB or more; fetched in a process limited to 1 GiB of address
    space, each is refused (or cut at the byte budget) quickly, and a gzip page still reads."""
    import zstandard

    gib = 1 << 30
    zstd = zstandard.ZstdCompressor(level=3).compressobj()
    zbody = b"".join(zstd.compress(b"\0" * (1 << 24)) for _ in range(gib >> 24)) + zstd.flush()
    bomb = _gzip_members(gib)
    html = "text/html; charset=utf-8"
    web.routes["/zstd"] = Route(zbody, html, headers={"Content-Encoding": "zstd"})
    web.routes["/stacked"] = Route(gzip.compress(bomb), html,
                                   headers={"Content-Encoding": "gzip, gzip"})
    web.routes["/gzip-bomb"] = Route(bomb, html, headers={"Content-Encoding": "gzip"},
                                     declare_length=False)
    web.routes["/br"] = Route(b"\x0b\x02\x80", html, headers={"Content-Encoding": "br"})
    web.routes["/gzip-page"] = Route(gzip.compress(page("Kiel ferries", BODY)), html,
                                     headers={"Content-Encoding": "gzip"})
    assert len(zbody) < 100_000 and len(bomb) < 2_000_000
    code = f"""
import resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from retrieval.fetch import FetchError, fetch
for path in ("/zstd", "/stacked", "/gzip-bomb", "/br", "/gzip-page"):
    started = time.monotonic()
    try:
        got = fetch({web.base_url!r} + path, allow_private=True, timeout_s=20,
                    max_bytes=5_000_000, max_redirects=0, accept=("text/html",))
        result = f"ok {{len(got.body)}} {{'Kiel ferries' in got.text}}"
    except FetchError as e:
        result = str(e)
    print(path, round(time.monotonic() - started, 1), result, flush=True)
# This process's own peak (ru_maxrss would count the parent's, from before exec).
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("maxrss_mib", int(peak.split()[1]) // 1024)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = {line.split(" ", 1)[0]: line.split(" ", 2)[1:] for line in r.stdout.splitlines()}
    base = web.base_url
    assert lines["/zstd"][1] == (f"{base}/zstd is sent with Content-Encoding zstd; only gzip "
                                 "or none is accepted")
    assert lines["/stacked"][1] == (f"{base}/stacked is sent with stacked encodings (gzip, "
                                    "gzip); only gzip or none is accepted")
    assert lines["/gzip-bomb"][1] == f"{base}/gzip-bomb is over the 5,000,000-byte limit"
    assert "Content-Encoding br" in lines["/br"][1]
    assert lines["/gzip-page"][1].startswith("ok ") and lines["/gzip-page"][1].endswith("True")
    assert all(float(v[0]) < 10 for k, v in lines.items() if k.startswith("/")), lines
    assert int(lines["maxrss_mib"][0]) < 400, lines  # was 2,082 MiB for the zstd body
    # Only gzip is asked for: httpx's default would offer zstd and br too.
    assert {h.get("Accept-Encoding") for _, h in web.hits} == {"gzip"}


def test_a_gzip_body_over_the_budget_is_cut_at_the_budget(web):
    web.routes["/big"] = Route(gzip.compress(page("Kiel", BODY * 2000)),
                               headers={"Content-Encoding": "gzip"})
    assert refusal(web.url("/big")) == f"{web.url('/big')} is over the 200,000-byte limit"
    web.routes["/junk"] = Route(b"\x1f\x8b\x08\x00junk" * 10,
                                headers={"Content-Encoding": "gzip"})
    assert refusal(web.url("/junk")) == f"{web.url('/junk')} is not valid gzip"


# -- one deadline for the whole fetch ---------------------------------------------------------
def test_headers_trickled_past_the_deadline_are_cut_off(web):
    web.routes["/slow-headers"] = Route(header_trickle_s=0.2)
    started = time.monotonic()
    assert refusal(web.url("/slow-headers"), timeout_s=1.5) == \
        "127.0.0.1 did not answer within 1.5 s"
    assert time.monotonic() - started < 3  # was past 30 s with a 3 s deadline


def test_redirects_share_the_one_deadline(web):
    web.routes["/a"] = Route(location="/b", delay_s=0.8)
    web.routes["/b"] = Route(location="/c", delay_s=0.8)
    web.routes["/c"] = Route(page("Kiel ferries", BODY), delay_s=0.8)
    started = time.monotonic()
    reason = refusal(web.url("/a"), timeout_s=2)
    assert "within 2 s" in reason, reason
    assert time.monotonic() - started < 3
    assert get(web.url("/a"), timeout_s=5).url == web.url("/c")


def test_the_transport_hook_still_exists():
    # fetch's deadline lives in the pool's network backend; fail loudly if httpx moves it.
    import httpcore
    import httpx

    assert isinstance(httpx.HTTPTransport()._pool, httpcore.ConnectionPool)


# -- every URL validated before use -----------------------------------------------------------
@pytest.mark.parametrize(("url", "reason"), [
    ("http://localhost:99999/a", "not a valid URL (Port out of range 0-65535)"),
    ("http://localhost:0/a", "the URL's port must be a number from 1 to 65535"),
    ("http://localhost:http/a", "not a valid URL"),
    ("http://[::1", "not a valid URL (Invalid IPv6 URL)"),
    ("http://", "the URL has no host"),
    ("https://victim.example@127.0.0.1/a", "URLs with a user name or password"),
    ("http://user:pass@news.example/a", "URLs with a user name or password"),
    ("http://news.example/a b", "the URL contains spaces or control characters"),
    ("http://news.example/\x00", "the URL contains spaces or control characters"),
    ("javascript:alert(1)", "only http and https URLs can be fetched, not javascript:"),
    ("news.example/a", "only http and https URLs can be fetched, not a URL without a scheme"),
    ("http://news.example/" + "a" * 5000, "the URL is 5,020 characters; the limit is 4,096"),
])
def test_bad_urls_are_one_line_refusals(url, reason):
    with pytest.raises(FetchError) as e:
        validate_url(url)
    assert str(e.value).startswith(reason), str(e.value)


def test_good_urls_pass_validation():
    assert validate_url("HTTPS://News.Example:8443/a?b=c#d")[1:] == ("news.example", 8443)
    assert validate_url("http://[2606:4700::1111]/")[1:] == ("2606:4700::1111", 80)


def test_a_bad_port_costs_one_line_and_the_good_file_goes_in(tmp_path, web, capsys,
                                                            monkeypatch):
    """`newsbot ingest good.txt http://localhost:99999/a` was a ValueError traceback, and the
    good file was not ingested; a redirect to such a port was the same."""
    from newsbot.cli import main

    monkeypatch.setenv("NEWSBOT_ALLOW_PRIVATE_URLS", "1")
    web.routes["/moved"] = Route(location="http://127.0.0.1:99999/a")
    good = write(tmp_path / "kiel.txt", GOOD)
    code = main(["--data-dir", str(tmp_path / "d"), "ingest", "--quiet", str(good),
                 "http://localhost:99999/a", web.url("/moved")])
    out, err = capsys.readouterr()
    assert code == 2 and "added 1" in out and "failed 2" in out, out + err
    assert "http://localhost:99999/a: not a valid URL (Port out of range 0-65535)" in out
    assert "Traceback" not in out + err


def test_a_redirect_to_another_host_is_held_to_public_addresses(web, make_bot):
    """The operator's allowance covers the host of the URL given; where a redirect leads is
    the server's choice."""
    port = web.server.server_address[1]
    web.routes["/elsewhere"] = Route(location=f"http://localhost:{port}/a")
    web.routes["/here"] = Route(location="/a")
    web.routes["/a"] = Route(page("Kiel ferries", BODY))
    nb = make_bot(allow_private_urls=True)
    report = nb.ingest([web.url("/elsewhere"), web.url("/here")])
    assert report.added == 1, report.summary()
    [f] = report.failed
    assert f.where == web.url("/elsewhere")
    assert "localhost is on this machine or a private network" in f.reason
    assert "allowance covers only the host of the URL given" in f.reason


def test_a_canonical_url_with_userinfo_is_not_trusted(web, make_bot):
    """A page on host H whose canonical URL is https://victim.example@H/... passed the
    same-host test and was stored with that URL and shown as Reuters."""
    host = web.base_url.removeprefix("http://")
    spoof = page("Kiel ferries", BODY, site="Reuters").replace(
        b"</head>", f'<link rel="canonical" href="https://www.reuters.com@{host}/world">'
                    f"</head>".encode())
    web.routes["/spoof"] = Route(spoof)
    nb = make_bot(allow_private_urls=True)
    report = nb.ingest([web.url("/spoof")])
    assert report.added == 1 and not report.failed, report.summary()
    [stored] = nb.catalog.articles()
    assert stored.url == web.url("/spoof") and stored.source == "127.0.0.1"
    assert "@" not in stored.url


# -- HTML bounded before parsing --------------------------------------------------------------
def test_attribute_and_element_heavy_pages_are_refused_in_bounded_time(tmp_path, web,
                                                                      make_bot):
    """80,000 attributes (869 KB) took lxml and trafilatura 61 s; a page of very many
    elements costs seconds per ten thousand."""
    attrs = "<html><body><div " + " ".join(f'a{i}="x"' for i in range(80_000)) + \
        f"><p>{BODY}</p></div></body></html>"
    spread = "<html><body>" + "".join(f'<p {" ".join(f"a{j}" for j in range(200))}>x</p>'
                                      for _ in range(1000)) + "</body></html>"
    elements = "<html><body>" + "<span>x</span>" * 40_000 + f"<p>{BODY}</p></body></html>"
    write(tmp_path / "in" / "attrs.html", attrs)
    write(tmp_path / "in" / "elements.html", elements)
    write(tmp_path / "in" / "kiel.txt", GOOD)
    web.routes["/attrs"] = Route(attrs.encode())
    web.routes["/spread"] = Route(spread.encode())
    nb = make_bot(allow_private_urls=True)
    started = time.monotonic()
    report = nb.ingest([tmp_path / "in", web.url("/attrs"), web.url("/spread")])
    assert time.monotonic() - started < 15  # embedding the good file included
    reasons = {f.where.rsplit("/", 1)[1]: f.reason for f in report.failed}
    assert report.added == 1, report.summary()
    assert reasons == {
        "attrs.html": "an HTML element has more than 256 attributes; the limit keeps parsing "
                      "time bounded",
        "attrs": "an HTML element has more than 256 attributes; the limit keeps parsing time "
                 "bounded",
        "elements.html": "the page has more than 30,000 HTML elements; the limit keeps "
                         "parsing time bounded",
        "spread": "the page has more than 150,000 HTML attributes; the limit keeps parsing "
                  "time bounded",
    }


def test_the_markup_check_is_linear_and_passes_real_pages():
    from retrieval.ingest import InputError, check_markup

    check_markup((ROOT / "samples" / "2022-01-20-polish-minister-munich.html").read_text())
    for evasion in ('<div a="x>" ' + "b " * 300 + ">",  # ">" inside quotes ends nothing
                    "<div " + "a/" * 300 + ">",  # "/" separates attributes as spaces do
                    '<div x"' + " a" * 300 + '">'):  # a stray quote opens no value
        with pytest.raises(InputError, match="more than 256 attributes"):
            check_markup(evasion)
    started = time.perf_counter()
    check_markup("<div" + " " * 3_000_000)
    check_markup("<script>" + "<a b c>" * 200_000 + "</script><p>ok</p>")  # script is text
    assert time.perf_counter() - started < 1.0


# -- feeds --------------------------------------------------------------------------------------
def _poll(nb, web, items, **feed):
    from retrieval.feeds import FeedStore, poll_all

    web.routes["/feed.xml"] = Route(rss("Kiel Local", items),
                                    content_type="application/rss+xml", **feed)
    store = FeedStore(nb.data_dir / "feeds.sqlite3")
    try:
        store.add(web.url("/feed.xml"), "global")
        return poll_all(nb, store), store.list()
    finally:
        store.close()


def test_feed_items_never_reach_private_hosts(web, make_bot, loopback_is_public):
    """With NEWSBOT_ALLOW_PRIVATE_URLS=1, an item linking to http://[::1]:PORT/... was stored
    in global with the internal page's text. The allowance covers the feed's own URL only."""
    port = web.server.server_address[1]
    web.routes["/internal"] = Route(page("Internal", "The staging password is hunter2. " * 9))
    web.routes["/story"] = Route(page("Kiel ferries", BODY))
    nb = make_bot(allow_private_urls=True)
    [r], _ = _poll(nb, web, [("1", f"http://[::1]:{port}/internal", "Internal", "x"),
                             ("2", f"http://10.0.0.7:{port}/internal", "Internal", "x"),
                             ("3", web.url("/story"), "Kiel ferries", "x")])
    assert r.status == "ok" and r.new == 3, r.summary()
    reasons = {f.where: f.reason for f in r.failed}
    assert set(reasons) == {f"http://[::1]:{port}/internal", f"http://10.0.0.7:{port}/internal"}
    for reason in reasons.values():
        assert "private network" in reason
        assert "item links are always held to public addresses" in reason
    assert "/internal" not in [path for path, _ in web.hits]
    [stored] = nb.catalog.articles()
    assert stored.title == "Kiel ferries"
    assert not any("hunter2" in nb.catalog.load("global", a.id)[0].text
                   for a in nb.catalog.articles())


def test_one_bad_item_never_fails_its_feed(web, make_bot, loopback_is_public, monkeypatch):
    """One item linking to port 99999 made its feed fail every poll, so its good items were
    never stored; so did an item whose page raised an error nobody foresaw."""
    web.routes["/story"] = Route(page("Kiel ferries", BODY))
    web.routes["/boom"] = Route(page("Boom", BODY + " Boom."))
    web.routes["/bomb"] = Route(page("Bomb", BODY + " Bomb."))
    nb = make_bot()
    real = nb.fetch_article

    def fetch_article(url, allow, **options):
        if url.endswith("/boom"):
            raise RuntimeError("a bug")
        return real(url, allow, **options)

    monkeypatch.setattr(nb, "fetch_article", fetch_article)
    bomb = "&lt;b&gt;x&lt;/b&gt;" * 31_000 + BODY  # the item's own text, too costly to parse
    [r], [feed] = _poll(nb, web, [("1", "http://localhost:99999/a", "Bad port", "x"),
                                  ("2", "https://victim.example@127.0.0.1/a", "Userinfo", "x"),
                                  ("3", web.url("/boom"), "Boom", "x"),
                                  ("4", web.url("/gone"), "Attribute bomb", bomb),
                                  ("5", web.url("/story"), "Kiel ferries", "x")])
    assert r.status == "ok" and feed.last_status == "ok", r.summary()
    reasons = {f.where: f.reason for f in r.failed}
    assert len(reasons) == 4, r.summary()
    assert reasons["http://localhost:99999/a"] == "not a valid URL (Port out of range 0-65535)"
    assert reasons["https://victim.example@127.0.0.1/a"].startswith(
        "URLs with a user name or password (user@host) are refused")
    assert reasons[web.url("/boom")] == "RuntimeError: a bug"
    assert "more than 30,000 HTML elements" in reasons[web.url("/gone")]
    assert [a.title for a in nb.catalog.articles()] == ["Kiel ferries"]


def test_a_poll_takes_at_most_the_item_cap_and_the_rest_next_time(web, make_bot,
                                                                  loopback_is_public):
    from retrieval.feeds import FeedStore, poll_all

    for n in range(5):
        web.routes[f"/s{n}"] = Route(page(f"Kiel story {n}", f"Story {n}. " + BODY))
    items = [(str(n), web.url(f"/s{n}"), f"Kiel story {n}", "x") for n in range(5)]
    nb = make_bot(feed_max_items=2)
    [r], _ = _poll(nb, web, items, etag='"v1"')
    assert (r.new, r.left) == (2, 3) and "3 left for the next poll" in r.summary()
    store = FeedStore(nb.data_dir / "feeds.sqlite3")
    try:
        web.hits.clear()
        [r] = poll_all(nb, store)  # the validators were not kept: the feed comes in full
        assert (r.new, r.unchanged, r.left) == (2, 2, 1), r.summary()
        assert "If-None-Match" not in web.hits[0][1]
        [r] = poll_all(nb, store)
        assert (r.new, r.unchanged, r.left) == (1, 4, 0), r.summary()
        [r] = poll_all(nb, store)
        assert r.status == "not modified"
    finally:
        store.close()
    assert nb.catalog.counts()["articles"] == 5


def test_feed_addresses_are_validated_and_capped_per_library(tmp_path, capsys):
    from newsbot.cli import main
    from retrieval.errors import NewsbotError
    from retrieval.feeds import FeedStore

    store = FeedStore(tmp_path / "feeds.sqlite3")
    try:
        assert store.add("https://a.example/feed", "global", limit=2)
        assert store.add("https://b.example/feed", "global", limit=2)
        assert not store.add("https://a.example/feed", "global", limit=2)  # already there
        with pytest.raises(NewsbotError, match="already follows 2 feeds; the limit is 2"):
            store.add("https://c.example/feed", "global", limit=2)
        assert store.add("https://c.example/feed", "guild-5", limit=2)  # another library
    finally:
        store.close()
    d = ["--data-dir", str(tmp_path / "d")]
    for url, reason in (("http://", "the URL has no host"),
                        ("http://[::1", "not a valid URL (Invalid IPv6 URL)"),
                        ("http://news.example:99999/feed", "not a valid URL (Port out"),
                        ("https://x@news.example/feed", "URLs with a user name or password")):
        assert main([*d, "feeds", "add", url]) == 2
        err = capsys.readouterr().err
        assert f"not a feed address: {reason}" in err and "Traceback" not in err, err


def test_slow_feeds_of_one_library_do_not_hold_the_others(web, make_bot, loopback_is_public):
    """One slow feed stopped poll_all for every server: libraries are now polled side by
    side, each one's slow feed costing that library only."""
    from retrieval.feeds import FeedStore, poll_all

    web.routes["/slow.xml"] = Route(header_trickle_s=0.2)
    web.routes["/story"] = Route(page("Kiel ferries", BODY))
    web.routes["/good.xml"] = Route(rss("Good", [("1", web.url("/story"), "Kiel", "x")]),
                                    content_type="application/rss+xml")
    # The deadline leaves the good feed's ingest (an embed and a write) room on a loaded
    # 2-core machine: what is asserted is the order, stored before the slow feed gave up.
    nb = make_bot(fetch_timeout_s=8)
    started, stored_at = time.monotonic(), []
    nb.on_ingest.append(lambda library: stored_at.append(time.monotonic() - started))
    store = FeedStore(nb.data_dir / "feeds.sqlite3")
    try:
        store.add(web.url("/slow.xml"), "guild-1")
        store.add(web.url("/good.xml"), "guild-2")
        reports = poll_all(nb, store)
    finally:
        store.close()
    assert [r.status for r in reports] == ["error: 127.0.0.1 did not answer within 8 s", "ok"]
    assert stored_at and stored_at[0] < 7.5, stored_at  # before the slow feed gave up
    assert time.monotonic() - started < 16


# -- local reads stay inside what was named ---------------------------------------------------
def test_symlinks_out_of_a_named_directory_and_dotfiles_are_not_read(tmp_path, make_bot):
    """A notes.txt symlink to the data dir's .env made DISCORD_TOKEN=... an article title in
    global, and `show notes` printed the LLM key."""
    data = tmp_path / "data"
    write(data / ".env", SECRET)
    write(data / "operator-notes.txt", "Operator notes\nThe staging password is hunter2.\n")
    write(tmp_path / "elsewhere" / "other.txt", GOOD.replace("Kiel", "Oslo"))
    d = tmp_path / "prepared"
    write(d / "kiel.txt", GOOD)
    write(d / ".hidden" / "x.txt", GOOD.replace("Kiel", "Bergen"))
    (d / "notes.txt").symlink_to(data / ".env")
    (d / "other.txt").symlink_to(tmp_path / "elsewhere" / "other.txt")
    (d / "inside.txt").symlink_to(d / "kiel.txt")  # a link that stays inside is followed
    (d / "hidden.txt").symlink_to(d / ".hidden" / "x.txt")
    named = tmp_path / "named.txt"
    named.symlink_to(tmp_path / "elsewhere" / "other.txt")  # named directly: followed
    write(tmp_path / ".secret.txt", GOOD)
    nb = make_bot(data_dir=data)
    report = nb.ingest([d, named, tmp_path / ".secret.txt", data / "operator-notes.txt",
                        data / ".env"])
    reasons = {f.where.removeprefix(str(tmp_path) + "/"): f.reason for f in report.failed}
    assert reasons == {
        "prepared/notes.txt": "a symlink to a file outside the directory named; not followed",
        "prepared/other.txt": "a symlink to a file outside the directory named; not followed",
        "prepared/hidden.txt": "a symlink to a hidden file (its name starts with a dot); not "
                               "followed",
        ".secret.txt": "a hidden file (its name starts with a dot); not read as an article",
        "data/operator-notes.txt": "inside newsbot's data directory; not read as an article",
        "data/.env": "a hidden file (its name starts with a dot); not read as an article",
    }
    assert sorted(a.id for a in nb.catalog.articles()) == ["inside", "kiel", "named"]
    texts = " ".join(nb.catalog.load("global", a.id)[0].text for a in nb.catalog.articles())
    assert "DISCORD_TOKEN" not in texts and "hunter2" not in texts and "Bergen" not in texts
