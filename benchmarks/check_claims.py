"""How often "Check against the news" (`newsbot check`) is right, written to docs/eval/check.md.

    .venv/bin/python benchmarks/check_claims.py [--data-dir /tmp/newsbot-eval --n 60]

Two sets of labelled claims:
- the bundled samples, with the hand-written claims of tests/data/claims.jsonl (true
  paraphrases and clauses; altered numbers, names, dates and places; negations; unrelated);
- with --data-dir, claims made from sentences of a store's articles (for example the RealTime QA
  dev articles that `newsbot eval` loads): each picked sentence as it is (true), with a number
  changed, with a name swapped for one from another article, negated (or, if it
  already says "not", without it); plus unrelated claims
  written here. The claims are made at run time; no article text is kept.

Prints and writes a confusion matrix (kind of claim against verdict) and the two figures the
issue sets targets for: how often "supported" is wrong, and how often altered numbers and names
are caught (not called supported; "disputed" is the verdict wanted). A benchmark: it asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import sys
import tempfile
from collections import Counter
from pathlib import Path

from common import need_store

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VERDICTS = ("supported", "disputed", "not_found")
# What each kind of sample claim should get; kinds not listed should merely not be "supported".
WANTED = {"clause": "supported", "paraphrase": "supported", "two-sentences": "supported",
          "wrong-number": "disputed", "wrong-name": "disputed", "negation": "disputed",
          "contradiction": "disputed", "wrong-date": "disputed", "unrelated": "not_found",
          "true": "supported", "number": "disputed", "name": "disputed",
          "negated": "disputed",
          # True, but the LLM answer it was written for cited the wrong sentence.
          "wrong-citation": "supported"}
UNRELATED = [
    "The city council approved a new bicycle lane on Elm Street on Tuesday.",
    "A local bakery won the national sourdough championship for the third year running.",
    "Scientists discovered a new species of frog in the mountains of Peru last month.",
    "The museum will reopen its dinosaur hall after a two-year renovation.",
    "Heavy snow closed every ski resort in the Pyrenees for a week.",
    "The orchestra announced a free concert in the central park next Sunday.",
    "A rare comet will be visible to the naked eye across Australia in August.",
    "The school district extended the summer holidays by one week.",
    "Farmers reported a record harvest of pumpkins in the valley this autumn.",
    "The public library is lending gardening tools to residents for free.",
]
_AUX = re.compile(r"\b(is|are|was|were|will|would|has|have|had|can|could|should)\b")
_NUM = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")
_NAME = re.compile(r"(?<=[a-z,] )[A-Z][a-z]{3,}\b")


def sample_claims(data_dir: Path, library: str, n: int, seed: int = 7) -> list[dict]:
    """Claims made from ``n`` sentences of the store, of each altered kind where possible."""
    db = sqlite3.connect(f"file:{data_dir / 'catalog.sqlite3'}?mode=ro", uri=True)
    rows = db.execute("SELECT a.id, a.text, s.start, s.end FROM sentences s JOIN articles a "
                      "ON a.library = s.library AND a.id = s.article_id WHERE s.library = ? "
                      "AND a.status = 'ready' ORDER BY a.id, s.idx", (library,)).fetchall()
    from retrieval.verify import _negated

    rng = random.Random(seed)
    rng.shuffle(rows)
    picked = []
    for aid, text, start, end in rows:
        s = " ".join(text[start:end].split())
        if 12 <= len(s.split()) <= 30 and s[:1].isupper() and s.endswith(".") \
                and '"' not in s and "\u201c" not in s:
            picked.append((aid, s))
        if len(picked) == n:
            break
    names = [(aid, m.group()) for aid, s in picked for m in _NAME.finditer(s)]
    out = []
    for aid, s in picked:
        out.append({"claim": s, "kind": "true"})
        if (m := _NUM.search(s)) and not re.fullmatch(r"(?:19|20)\d\d", m.group()):
            value = int(float(m.group().replace(",", "")))
            out.append({"claim": s[:m.start()] + str(value * 2 + 3) + s[m.end():],
                        "kind": "number"})
        if (m := _NAME.search(s)) and (others := [nm for a, nm in names
                                                  if a != aid and nm not in s]):
            out.append({"claim": s[:m.start()] + rng.choice(others) + s[m.end():],
                        "kind": "name"})
        if " not " in s:  # a negated sentence is un-negated, never negated twice
            out.append({"claim": s.replace(" not ", " ", 1), "kind": "negated"})
        elif (m := _AUX.search(s)) and not _negated(s):
            out.append({"claim": s[:m.end()] + " not" + s[m.end():], "kind": "negated"})
    out += [{"claim": c, "kind": "unrelated"} for c in UNRELATED]
    return out


def run(nb, claims: list[dict], library: str) -> list[dict]:
    from retrieval.check import check_text

    rows = []
    for c in claims:
        v = check_text(nb, c["claim"], [library]).verdicts[0]
        rows.append({**c, "verdict": v.verdict, "reason": v.reason})
    return rows


def table(rows: list[dict], title: str) -> str:
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    counts = Counter((r["kind"], r["verdict"]) for r in rows)
    said = [r for r in rows if r["verdict"] == "supported"]
    wrong = [r for r in said if WANTED.get(r["kind"]) != "supported"]
    altered = [r for r in rows if r["kind"] in ("number", "name", "wrong-number", "wrong-name")]
    caught = [r for r in altered if r["verdict"] != "supported"]
    disputed = [r for r in altered if r["verdict"] == "disputed"]
    lines = [f"### {title}", "", "| kind of claim | claims | " + " | ".join(VERDICTS) + " |",
             "|---|---|" + "---|" * len(VERDICTS)]
    for k in kinds:
        lines.append(f"| {k} | {sum(counts[k, v] for v in VERDICTS)} | "
                     + " | ".join(str(counts[k, v]) for v in VERDICTS) + " |")
    lines += ["", f"- \"supported\" wrong: {len(wrong)} of {len(said)} "
                  f"({len(wrong) / max(1, len(said)):.1%}; target ≤ 5%)",
              f"- altered numbers and names caught (not supported): {len(caught)} of "
              f"{len(altered)} ({len(caught) / max(1, len(altered)):.1%}; target ≥ 80%), "
              f"called disputed: {len(disputed)} ({len(disputed) / max(1, len(altered)):.1%})",
              ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, help="a store to make claims from")
    ap.add_argument("--library", default="global")
    ap.add_argument("--n", type=int, default=60, help="sentences of the store to use")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "eval" / "check.md")
    ap.add_argument("--details", type=Path, help="write every claim and verdict (JSONL) here")
    args = ap.parse_args()

    from newsbot.cli import SAMPLES_DIR
    from newsbot.settings import load_settings
    from retrieval.service import Newsbot

    parts = ["# Check against the news: labelled claims", "",
             "`benchmarks/check_claims.py`; verdicts of `newsbot check` for each claim on its "
             "own.", ""]
    details = []
    with tempfile.TemporaryDirectory() as tmp:
        nb = Newsbot(load_settings(None, data_dir=Path(tmp), reader="none"))
        nb.ingest([SAMPLES_DIR], "global")
        labelled = [json.loads(line) for line in
                    (ROOT / "tests" / "data" / "claims.jsonl").read_text().splitlines() if line]
        rows = run(nb, [{"claim": c["claim"], "kind": c["kind"]} for c in labelled], "global")
        parts.append(table(rows, f"Bundled samples ({len(rows)} hand-written claims, "
                                 "tests/data/claims.jsonl)"))
        details += rows
    if args.data_dir:
        need_store(args.data_dir, [args.library])
        nb = Newsbot(load_settings(None, data_dir=args.data_dir, reader="none"))
        claims = sample_claims(args.data_dir, args.library, args.n)
        rows = run(nb, claims, args.library)
        parts.append(table(rows, f"Claims made from {args.n} sentences of {args.data_dir.name} "
                                 f"({len(rows)} claims)"))
        details += rows
    text = "\n".join(parts)
    print(text)
    args.out.write_text(text, encoding="utf-8")
    if args.details:
        args.details.write_text("".join(json.dumps(r) + "\n" for r in details))


if __name__ == "__main__":
    main()
