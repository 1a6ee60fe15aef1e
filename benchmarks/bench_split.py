"""Sentence splitting: fragment rate before and after merging pysbd's fragments (issue 25).

Splits the written dev articles (newsqa-written, the articles of its dev questions) and the
BBC articles twice, with split_sentences(merge=False) and merge=True, and prints per corpus:
sentences per article, the fragment rate, each kind of fragment, the longest sentence, and
for the written dev answerable questions how their labels map onto the sentences. Usage:

    .venv/bin/python benchmarks/bench_split.py [--limit N]

A sentence is counted as a fragment (the issue's definition, kept apart from the merge rules
so that it measures them) when it is not the first of its paragraph and it starts lowercase
or with punctuation no sentence starts with, or follows a sentence that ends in a time
("a.m."), a month abbreviation, a title, a party-state tag or a company abbreviation. The
last part also counts real ends such as "... Warner Bros. But critics", so a merge that is
right to leave those alone cannot reach 0. Fragments whose seam the 600-character cap made
(or would remake) are counted too, and shown apart.

A label maps when exactly one sentence contains its short answer span (the data README's
rule); "same bounds" counts those whose sentence is the labelled one exactly, "grown" those
whose sentence strictly contains the labelled one.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import re
import time

from common import SHARED, need_shared, records

WRITTEN = SHARED / "newsqa-written"
BBC = SHARED / "bbc" / "articles.jsonl.gz"

_LAST_TOKEN = {
    "time": re.compile(r"(?:^|\d)[ap]\.m\.$", re.IGNORECASE),
    "month": re.compile(r"(?:^|[-\u2013(/\d])(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\.$"),
    "title": re.compile(r"(?:^|[-(])(?:Mr|Mrs|Ms|Dr|Gov|Sen|Rep|St|Gen|Lt|Col|Sgt|Capt|Prof|Rev|"
                        r"Jr|Sr)\.$"),
    "party-state": re.compile(r"^\(?[DRI]-[A-Z][A-Za-z.]*\.$"),
    "company": re.compile(r"^(?:Co|Cos|Corp|Inc|Ltd|Bros|Plc|LLC)\.$"),
}
_CLOSING = ",;:.)]}%\u2026!?\u201d\u2019\u00bb-\u2013\u2014\u2212"


def fragment_kind(prev: str, text: str) -> str | None:
    """Why ``text`` (after ``prev`` in the same paragraph) looks like a fragment, or None."""
    if text[0].islower():
        return "lowercase start"
    if (text[0] in _CLOSING or not any(c.isalnum() for c in text)
            or re.match(r"['\u2019]s\b", text)):
        return "punctuation start"
    last = prev.split()[-1]
    for kind, pattern in _LAST_TOKEN.items():
        if pattern.search(last):
            return f"after {kind}"
    return None


def articles(path, keep: set[str] | None, limit: int | None) -> list[tuple[dict, object]]:
    from retrieval.ingest import from_record

    out = []
    for r in records(path):
        if keep is None or r["id"] in keep:
            out.append((r, from_record(r, "bench")))
            if limit and len(out) == limit:
                break
    return out


def measure(name: str, arts, merge: bool, labels: list[dict]) -> dict:
    from retrieval.split import split_sentences

    started = time.perf_counter()
    kinds: collections.Counter[str] = collections.Counter()
    n_sentences = n_fragments = at_cap = longest = 0
    spans: dict[str, list[tuple[int, int]]] = {}
    for record, a in arts:
        # from_record strips the text; labels index the record's own text.
        shift = len(record["text"]) - len(record["text"].lstrip())
        sentences = split_sentences(a.id, a.text, a.body_start, 600, merge=merge)
        spans[record["id"]] = [(s.start + shift, s.end + shift) for s in sentences]
        n_sentences += len(sentences)
        longest = max([longest, *(len(s.text) for s in sentences)])
        for prev, s in itertools.pairwise(sentences):
            if "\n" in a.text[prev.end:s.start]:
                continue
            kind = fragment_kind(prev.text, s.text)
            if kind:
                kinds[kind] += 1
                n_fragments += 1
                # Joined, the two would pass the 600-character cap: no merge may undo this.
                at_cap += s.end - prev.start > 600
    row = {"corpus": name, "merge": merge, "articles": len(arts), "sentences": n_sentences,
           "per_article": n_sentences / max(1, len(arts)),
           "fragment_rate": n_fragments / max(1, n_sentences), "fragments": n_fragments,
           "kinds": dict(kinds), "at_cap": at_cap, "longest": longest,
           "seconds": round(time.perf_counter() - started, 1)}
    if labels:
        mapped = same = grown = 0
        labels = [q for q in labels if q["article_id"] in spans]
        for q in labels:
            sp = spans[q["article_id"]]
            sh, lab = q["short"], q["sentence"]
            holding = [(s, e) for s, e in sp if s <= sh["start"] and sh["end"] <= e]
            if len(holding) == 1:
                mapped += 1
                s, e = holding[0]
                same += (s, e) == (lab["start"], lab["end"])
                grown += s <= lab["start"] and lab["end"] <= e and (s, e) != (lab["start"],
                                                                             lab["end"])
        row["labels"] = {"answerable": len(labels), "mapped": mapped, "same_bounds": same,
                         "grown": grown}
    return row


def show(row: dict) -> None:
    print(f"{row['corpus']:12} merge={row['merge']!s:5} {row['articles']:5} articles "
          f"{row['sentences']:6} sentences ({row['per_article']:.2f}/article)  "
          f"fragments {row['fragments']:4} = {100 * row['fragment_rate']:.2f}%  "
          f"longest {row['longest']}  {row['seconds']} s")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(row["kinds"].items())) or "none"
    print(f"             {kinds}; {row['at_cap']} of them where the two together pass the "
          "600-character cap")
    if "labels" in row:
        lab = row["labels"]
        print(f"             labels: {lab['mapped']}/{lab['answerable']} map to exactly one "
              f"sentence holding the short answer ({lab['same_bounds']} same bounds, "
              f"{lab['grown']} grown)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="articles per corpus")
    parser.add_argument("--json", action="store_true", help="one JSON line per row as well")
    args = parser.parse_args()
    need_shared()
    questions = [json.loads(x) for x in
                 (WRITTEN / "questions.jsonl").read_text(encoding="utf-8").splitlines() if x]
    dev = [q for q in questions if q["split"] == "dev"]
    labels = [q for q in dev if q["answerable"]]
    corpora = [("written-dev", articles(WRITTEN / "articles.jsonl.gz",
                                        {q["article_id"] for q in dev}, args.limit), labels),
               ("bbc", articles(BBC, None, args.limit), [])]
    for name, arts, labs in corpora:
        for merge in (False, True):
            row = measure(name, arts, merge, labs)
            show(row)
            if args.json:
                print(json.dumps(row))


if __name__ == "__main__":
    main()
