"""Verification error rates on the labelled claims (tests/data/claims.jsonl), written to
docs/eval/verification.md: how often a correct claim is removed, and how often an unsupported
one is kept, at the configured thresholds and around them.

    .venv/bin/python benchmarks/verify_claims.py [--out docs/eval/verification.md]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from common import ROOT

from newsbot.settings import Settings
from retrieval.embed import Embedder
from retrieval.verify import Verifier
from retrieval.verify_eval import load_claims, measure, sentence_index


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "eval" / "verification.md")
    args = ap.parse_args()
    s = Settings()
    embedder = Embedder(precision=s.precision).load()  # as the bot encodes by default
    claims = load_claims(ROOT / "tests" / "data" / "claims.jsonl")
    sentences = sentence_index([ROOT / "samples"])
    m = measure(Verifier(embedder.embed, s.verify_min_similarity, s.verify_min_overlap),
                claims, sentences)
    kinds = Counter(r["kind"] for r in m["rows"])
    lines = [
        "# Verification of LLM answers: error rates",
        "",
        "Produced by `.venv/bin/python benchmarks/verify_claims.py` on the labelled claims in",
        "`tests/data/claims.jsonl` (written by the developers about the bundled sample articles;",
        "each claim cites one or two sample sentences and is labelled supported or not).",
        f"Thresholds: similarity >= {s.verify_min_similarity}, content-word overlap >= "
        f"{s.verify_min_overlap} (`NEWSBOT_VERIFY_MIN_SIMILARITY`, `NEWSBOT_VERIFY_MIN_OVERLAP`).",
        "",
        "| claims | supported | unsupported | correct claim removed | unsupported claim kept |",
        "|---|---|---|---|---|",
        f"| {m['claims']} | {m['supported']} | {m['unsupported']} | "
        f"{m['false_removal_rate']:.1%} ({len(m['false_removals'])}) | "
        f"{m['false_keep_rate']:.1%} ({len(m['false_keeps'])}) |",
        "",
        "Kinds of claim: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ".",
        "",
        "",
        "## Around the chosen thresholds",
        "",
        "| similarity | overlap | correct removed | unsupported kept |",
        "|---|---|---|---|",
    ]
    for sim in (0.45, 0.55, 0.65):
        for ovl in (0.6, 0.7, 0.75, 0.8):
            g = measure(Verifier(embedder.embed, sim, ovl), claims, sentences)
            lines.append(f"| {sim} | {ovl} | {g['false_removal_rate']:.1%} | "
                         f"{g['false_keep_rate']:.1%} |")
    lines += ["", "## Errors at the chosen thresholds", ""]
    for title, rows in (("Correct claims removed", m["false_removals"]),
                        ("Unsupported claims kept", m["false_keeps"])):
        lines.append(f"**{title}** ({len(rows)})")
        lines.append("")
        lines += [f"- \u201c{r['claim']}\u201d ({r['kind']}): {r['reason']}" for r in rows]
        lines.append("" if rows else "- none\n")
    lines += [
        "## Reading these numbers",
        "",
        "- The set is small and was written by the same people who wrote the checks, so these",
        "  rates are an optimistic bound; the rules are what to rely on: a number, name, negation",
        "  or listed opposite that its cited sentences lack removes a sentence whatever the",
        "  similarity.",
        "- The correct claims removed are removed by design: each names someone or something",
        "  that only the sentences around the cited one name (the cited one says",
        "  \u201che\u201d). A reader who checks the quote could not confirm the name, so the",
        "  claim is not shown.",
        "- Paraphrase with new words for the same facts scores lower overlap; the overlap",
        "  threshold is the main trade-off between the two rates.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), "utf-8")
    print("\n".join(lines[8:12]))


if __name__ == "__main__":
    main()
