"""Discord benchmark: time from interaction to follow-up, against the fake Discord on 127.0.0.1.

Runs the real discord.py client and the real core (bundled samples). Prints p50/p95 over
sequential /ask interactions and with N in flight at once. Usage:

    .venv/bin/python benchmarks/bench_bot.py [--asks 200] [--in-flight 20]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import ROOT, pct

QUESTIONS = ["who did Wallace meet in Germany?", "what did EU ministers ban?",
             "how long did the French minister's talks in Moscow last?",
             "why was the pipeline decision delayed?", "who won the football world cup?"]


async def main(asks: int, in_flight: int) -> None:
    from bot.app import NewsBot
    from bot.run import point_at
    from newsbot.settings import Settings
    from retrieval.service import Newsbot
    from tests.fake_discord import GOOD_TOKEN, FakeDiscord

    fake = FakeDiscord()
    await fake.start()
    fake.add_guild(1001, "Bench")
    point_at(fake.api_base, fake.gateway_url)
    with tempfile.TemporaryDirectory() as d:
        settings = Settings(data_dir=Path(d), discord_guild_ids="1001", cooldown_s=0)
        core = Newsbot(settings)
        core.ingest([ROOT / "samples"])
        await asyncio.to_thread(core.warm)
        bot = NewsBot(core, settings, guild_ready_timeout=0.05)
        task = asyncio.create_task(bot.start(GOOD_TOKEN))
        while not bot.is_ready():
            await asyncio.sleep(0.01)

        async def one(n: int):
            i = await fake.command("ask", {"question": QUESTIONS[n % len(QUESTIONS)]},
                                   guild_id=1001, uid=n)
            await fake.wait(lambda: i.followups, 60, "follow-up")
            return i

        for n in range(5):  # warm up
            await one(n)
        seq = [await one(n) for n in range(asks)]
        report("sequential", seq)
        t = time.perf_counter()
        sem = asyncio.Semaphore(in_flight)

        async def limited(n: int):
            async with sem:
                return await one(n)

        conc = await asyncio.gather(*(limited(n) for n in range(asks)))
        report(f"{in_flight} in flight", conc, time.perf_counter() - t)
        await bot.close()
        await task
        core.close()
    await fake.stop()


def report(label: str, done, wall: float | None = None) -> None:
    ans = [i.answered_s * 1000 for i in done]
    dfr = [i.defer_s * 1000 for i in done]
    extra = f", {len(done) / wall:.1f} answers/s" if wall else ""
    print(f"/ask {label}: {len(done)} interactions{extra}")
    print(f"  interaction -> follow-up  p50 {pct(ans, 50):7.1f} ms   p95 {pct(ans, 95):7.1f} ms"
          f"   (target p95 < 1000 ms with 20 in flight)")
    print(f"  interaction -> defer      p50 {pct(dfr, 50):7.1f} ms   p95 {pct(dfr, 95):7.1f} ms"
          f"   max {max(dfr):.1f} ms (Discord's limit 3000 ms)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--asks", type=int, default=200)
    p.add_argument("--in-flight", type=int, default=20)
    a = p.parse_args()
    asyncio.run(main(a.asks, a.in_flight))
