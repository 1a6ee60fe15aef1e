"""Articles from the web and from feeds, against a local server on 127.0.0.1: extraction, the
SSRF guard, limits (time, size, type, redirects), and feed polling with ETag and changes."""

from __future__ import annotations

import time

import pytest

from retrieval.fetch import FetchError, check_url
from tests.web_stub import Route, WebStub, page, rss

FERRY = ("The harbour ferry crews of Lindholm ended their strike on Monday after the port "
         "authority agreed to hire twelve more deckhands.\n"
         "Union spokeswoman Ida Brandt said the new rosters would start on March 1.\n"
         "Ferries to the outer islands had been cancelled for nine days.")
BRIDGE = ("The Lindholm council approved a new cycle bridge over the canal on Tuesday.\n"
          "Construction will cost 4.2 million crowns and start in May, the council said.\n"
          "The bridge is due to open in the autumn of next year.")
BRIDGE_V2 = BRIDGE.replace("4.2 million", "4.6 million")
MARKET = ("The Lindholm fish market will move to the old rail depot in June, the city said on "
          "Wednesday.\nTraders had asked for a covered hall for ten years.\n"
          "The move is paid for by the port authority.")


@pytest.fixture
def web():
    stub = WebStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def web_bot(make_bot):
    def make(**overrides):
        return make_bot(**{"allow_private_urls": True, "fetch_timeout_s": 2,
                           "fetch_max_bytes": 200_000, **overrides})
    return make


def test_ingest_url_extracts_the_article_and_answers_from_it(web, web_bot):
    web.routes["/ferry"] = Route(page("Lindholm ferry strike ends", FERRY))
    nb = web_bot()
    report = nb.ingest([web.url("/ferry")])
    assert (report.added, report.failed) == (1, []), report.summary()
    [stored] = nb.catalog.articles(["global"])
    assert stored.title == "Lindholm ferry strike ends"
    assert stored.source == "Newsbot Sample Wire" and stored.published == "2022-02-14"
    assert stored.url == web.url("/ferry") and stored.id.startswith("url-")
    article, _ = nb.catalog.load("global", stored.id)
    assert article.authors == ["Mara Lind"]
    assert "Home | World" not in article.text and "Copyright" not in article.text
    a = nb.ask("how many deckhands will the port authority hire?")
    assert "twelve more deckhands" in a.citations[0].quote
    assert a.citations[0].url == web.url("/ferry")
    assert nb.ingest([web.url("/ferry")]).unchanged == 1  # idempotent by content


def test_private_addresses_are_refused_unless_allowed(web, web_bot):
    web.routes["/ferry"] = Route(page("Lindholm ferry strike ends", FERRY))
    nb = web_bot(allow_private_urls=False)
    report = nb.ingest([web.url("/ferry"), "http://localhost:9/x", "file:///etc/passwd",
                        "ftp://127.0.0.1/x"])
    reasons = {f.where: f.reason for f in report.failed}
    assert report.added == 0 and len(reasons) == 4
    assert "private network" in reasons[web.url("/ferry")]
    assert "NEWSBOT_ALLOW_PRIVATE_URLS=1" in reasons[web.url("/ferry")]
    assert "private network" in reasons["http://localhost:9/x"]
    assert "only http and https" in reasons["file:///etc/passwd"]
    assert "only http and https" in reasons["ftp://127.0.0.1/x"]
    assert web.hits == []  # refused before any connection
    # The same URL, where the operator allows it, is fetched (the bot never allows it).
    assert web_bot().ingest([web.url("/ferry")]).added == 1
    assert nb.ingest([web.url("/ferry")], allow_private=False).failed


@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "[::1]", "[fd00::1]",
                                     "[::ffff:127.0.0.1]", "127.1"])
def test_ssrf_guard_covers_private_ranges(address):
    with pytest.raises(FetchError, match="private network"):
        check_url(f"http://{address}/latest", allow_private=False)


def test_public_addresses_pass_the_guard():
    assert check_url("https://93.184.215.14/a", allow_private=False)[1:] == ("93.184.215.14",
                                                                             443)


def test_redirects_are_followed_checked_and_capped(web, web_bot):
    web.routes["/ferry"] = Route(page("Lindholm ferry strike ends", FERRY))
    web.routes["/old"] = Route(location="/ferry", status=301)
    web.routes["/loop"] = Route(location="/loop")
    web.routes["/out"] = Route(location="file:///etc/passwd")
    nb = web_bot(fetch_max_redirects=3)
    report = nb.ingest([web.url("/old"), web.url("/loop"), web.url("/out")])
    assert report.added == 1
    [stored] = nb.catalog.articles(["global"])
    assert stored.url == web.url("/ferry")  # the article is known by where it really is
    reasons = {f.where: f.reason for f in report.failed}
    assert "more than 3 redirects" in reasons[web.url("/loop")]
    assert "only http and https" in reasons[web.url("/out")]


def test_slow_huge_odd_and_failing_pages_are_refused_cleanly(web, web_bot):
    web.routes["/slow"] = Route(page("Slow", FERRY), delay_s=5)
    web.routes["/huge"] = Route(page("Huge", FERRY * 2000))
    web.routes["/huge-chunked"] = Route(page("Huge", FERRY * 2000), declare_length=False)
    web.routes["/pdf"] = Route(b"%PDF-1.7 ...", content_type="application/pdf")
    web.routes["/broken"] = Route(b"oops", status=500, content_type="text/plain")
    web.routes["/empty"] = Route(b"<html><body><nav>menu</nav></body></html>")
    web.routes["/ferry"] = Route(page("Lindholm ferry strike ends", FERRY))
    nb = web_bot(fetch_timeout_s=1)
    started = time.monotonic()
    report = nb.ingest([web.url(p) for p in ("/slow", "/huge", "/huge-chunked", "/pdf",
                                             "/broken", "/empty", "/missing", "/ferry")])
    assert time.monotonic() - started < 8
    reasons = {f.where.rsplit("/", 1)[1]: f.reason for f in report.failed}
    assert "did not answer within 1 s" in reasons["slow"]
    assert "the limit is 200,000" in reasons["huge"]
    assert "over the 200,000-byte limit" in reasons["huge-chunked"]
    assert "application/pdf, not text/html" in reasons["pdf"]
    assert "HTTP 500" in reasons["broken"] and "HTTP 404" in reasons["missing"]
    assert "no article text found on the page" in reasons["empty"]
    assert report.added == 1  # the good page still goes in


def test_cli_ingest_url_exits_2_on_a_refused_url(web, tmp_path, capsys):
    from newsbot.cli import main

    web.routes["/ferry"] = Route(page("Lindholm ferry strike ends", FERRY))
    code = main(["--data-dir", str(tmp_path / "d"), "ingest", "--quiet", web.url("/ferry")])
    out = capsys.readouterr().out
    assert code == 2 and "failed 1" in out and "private network" in out


# -- feeds
def _feed(web: WebStub, items: list[tuple[str, str, str, str]], etag: str) -> None:
    web.routes["/feed.xml"] = Route(rss("Lindholm Local", items),
                                    content_type="application/rss+xml", etag=etag)


def test_feed_polls_honour_etag_and_ingest_only_new_or_changed_items(web, web_bot,
                                                                     loopback_is_public):
    from retrieval.feeds import FeedStore, poll_all

    web.routes["/ferry"] = Route(page("Lindholm ferry strike ends", FERRY))
    web.routes["/bridge"] = Route(page("Council approves cycle bridge", BRIDGE))
    _feed(web, [("a1", web.url("/ferry"), "Ferry strike ends", "Crews back at work"),
                ("a2", web.url("/bridge"), "Cycle bridge approved", "Council vote")], '"v1"')
    nb = web_bot()
    store = FeedStore(nb.data_dir / "feeds.sqlite3")
    assert store.add(web.url("/feed.xml"), "global") and not store.add(web.url("/feed.xml"),
                                                                       "global")
    [r] = poll_all(nb, store)
    assert (r.status, r.new, r.changed, r.unchanged) == ("ok", 2, 0, 0), r.summary()
    assert nb.catalog.counts(["global"])["articles"] == 2

    web.hits.clear()
    [r] = poll_all(nb, store)  # nothing changed: the server answers 304
    assert r.status == "not modified"
    assert web.hits == [("/feed.xml", web.hits[0][1])]
    assert web.hits[0][1]["If-None-Match"] == '"v1"'

    # The feed changes between two polls: one item changed, one new, one as before.
    web.routes["/bridge"] = Route(page("Council approves cycle bridge", BRIDGE_V2))
    web.routes["/market"] = Route(page("Fish market to move", MARKET))
    _feed(web, [("a1", web.url("/ferry"), "Ferry strike ends", "Crews back at work"),
                ("a2", web.url("/bridge"), "Cycle bridge approved", "Council vote, updated"),
                ("a3", web.url("/market"), "Fish market moves", "To the rail depot")], '"v2"')
    web.hits.clear()
    [r] = poll_all(nb, store)
    assert (r.status, r.new, r.changed, r.unchanged) == ("ok", 1, 1, 1), r.summary()
    assert "/ferry" not in [path for path, _ in web.hits]  # an unchanged item is not fetched
    assert nb.catalog.counts(["global"])["articles"] == 3
    bridge = next(r for r in nb.catalog.articles(["global"]) if "bridge" in r.title)
    text = nb.catalog.load("global", bridge.id)[0].text
    assert "4.6 million" in text and "4.2 million" not in text  # replaced, not duplicated
    quotes = [c.quote for c in nb.ask("what will the construction of the bridge cost?").citations]
    assert any("4.6 million" in q for q in quotes), quotes

    # A feed served in full again (a new ETag) but with nothing new needs no write lock: a
    # poll while another ingest holds the store is not "busy".
    web.routes["/feed.xml"].etag = '"v3"'
    other = web_bot(data_dir=nb.data_dir)
    with other._writer():
        [r] = poll_all(nb, store)
    assert (r.status, r.new, r.changed, r.unchanged) == ("ok", 0, 0, 3), r.summary()
    store.close()

    # A restart (a new process, the same data dir) resumes where polling left off.
    reopened = FeedStore(nb.data_dir / "feeds.sqlite3")
    [r] = poll_all(nb, reopened)
    assert r.status == "not modified"
    reopened.close()


def test_feed_errors_keep_state_and_items_fall_back_to_their_own_text(web, web_bot):
    from retrieval.feeds import FeedStore, poll

    nb = web_bot()
    store = FeedStore(nb.data_dir / "feeds.sqlite3")
    store.add(web.url("/feed.xml"), "global")
    web.routes["/feed.xml"] = Route(b"down", status=500, content_type="text/plain")
    [feed] = store.list()
    r = poll(nb, store, feed)
    assert r.status.startswith("error") and "HTTP 500" in r.status
    [feed] = store.list()
    assert feed.last_status == r.status and feed.etag == ""

    long_text = " ".join([MARKET.replace("\n", " ")] * 3)
    _feed(web, [("m1", web.url("/gone"), "Fish market moves", long_text),
                ("m2", web.url("/gone-too"), "Short", "Too short to stand alone")], '"v1"')
    r = poll(nb, store, feed)
    assert r.new == 2 and [f.where for f in r.failed] == [web.url("/gone-too")]
    assert "too short" in r.failed[0].reason
    [stored] = nb.catalog.articles(["global"])
    assert stored.title == "Fish market moves" and stored.source == "Lindholm Local"
    store.close()


def test_feeds_and_watch_commands(web, tmp_path, capsys, monkeypatch, loopback_is_public):
    from newsbot.cli import main

    monkeypatch.setenv("NEWSBOT_ALLOW_PRIVATE_URLS", "1")
    web.routes["/ferry"] = Route(page("Lindholm ferry strike ends", FERRY))
    _feed(web, [("a1", web.url("/ferry"), "Ferry strike ends", "Crews back at work")], '"v1"')
    d = ["--data-dir", str(tmp_path / "d")]
    assert main([*d, "watch", "--once"]) == 2  # no feeds yet: a clear error
    assert "nothing to watch" in capsys.readouterr().err
    assert main([*d, "feeds", "add", web.url("/feed.xml")]) == 0
    assert main([*d, "feeds", "add", "file:///etc/passwd"]) == 2
    assert main([*d, "watch", "--once"]) == 0
    assert "1 new" in capsys.readouterr().out
    assert main([*d, "watch", "--once"]) == 0
    assert "not modified" in capsys.readouterr().out
    assert main([*d, "feeds", "list"]) == 0
    assert "not modified" in capsys.readouterr().out
    assert main([*d, "feeds", "remove", web.url("/feed.xml")]) == 0
    assert main([*d, "feeds", "remove", web.url("/feed.xml")]) == 2
