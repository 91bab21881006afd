"""Benchmark: precision and recall of the evidence relevance floor on our labelled pairs.

    python bench/relevance.py [--pairs bench/data/relevance_pairs.json] [--corpus datasets/corpus]

bench/data/relevance_pairs.json holds questions x passages, each marked relevant (the passage
helps answer the question) or not. Most passages are what BM25 over datasets/corpus/ returns
for the question (its top 5, no floor); the rest are web-search snippets written in Google's
style, filler for odd queries included. Many questions are ones the shipped corpus does not
cover at all, so every passage BM25 finds for them is an off-topic trap. "set" says whether a
pair was used to choose the floor ("tuning") or written and labelled after it was fixed
("held-out"), which is the fairer measure.

Printed: precision of the kept passages and recall of the relevant ones, per source and
overall, for the floor at several values of --min_relevance, beside the rule used before the
floor existed (BM25's top 5 minus hits under half the best one's score; web snippets all kept),
measured in the same run, the floor's word share alone (the rule before titles counted, see
relevance.py), and the floor combined with that relative rule.
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from realign.search.bm25 import Bm25Corpus  # noqa: E402
from realign.search.relevance import DEFAULT_MIN_RELEVANCE, clears, content_words, passage_score, relevance  # noqa: E402

FLOORS = (0.0, 0.5, 0.6, 0.7, 0.8)   # 0 is no floor: every hit kept
SHARE_OF_BEST = 0.5   # the relative rule used before the floor


def relative_rule(pairs, corpus):
    """{id(pair): kept} under the old rule: in BM25's top 5 and >= half the best hit's score."""
    kept = {}
    for q in {p["question"] for p in pairs if p["source"] == "corpus"}:
        hits = corpus.search(q, 5)
        best = hits[0]["bm25"] if hits else 0
        good = {h["title"] for h in hits if h["bm25"] >= SHARE_OF_BEST * best}
        for p in pairs:
            if p["question"] == q and p["source"] == "corpus":
                kept[id(p)] = p["title"] in good
    return kept


def row(name, pairs, keep):
    cells = []
    for source in ("corpus", "web", None):
        subset = [p for p in pairs if source is None or p["source"] == source]
        kept = [p for p in subset if keep(p)]
        right = sum(p["relevant"] for p in kept)
        cells += [len(kept), 100 * right / max(1, len(kept)), 100 * right / max(1, sum(p["relevant"] for p in subset))]
    print(f"{name:<34}" + "".join(f"{k:6d} {prec:6.1f} {rec:6.1f}   " for k, prec, rec in zip(*[iter(cells)] * 3)))


def table(name, pairs, old):
    """The precision/recall table of one set of pairs."""
    questions = {p["question"] for p in pairs}
    uncovered = {q for q in questions if not any(p["relevant"] for p in pairs if p["question"] == q)}
    by_source = {s: sum(p["source"] == s for p in pairs) for s in ("corpus", "web")}
    print(f"{name}: {len(pairs)} pairs ({by_source['corpus']} corpus, {by_source['web']} web), "
          f"{sum(p['relevant'] for p in pairs)} relevant; {len(questions)} questions, "
          f"{len(uncovered)} with no relevant passage at all")
    print(f"{'':<34}{'corpus':>20}   {'web':>20}   {'all':>20}")
    print(f"{'rule':<34}" + "  kept  prec%   rec%   " * 3)
    row("before: >= 0.5 x best BM25 hit", pairs, lambda p: old.get(id(p), True))
    row(f"word share only {DEFAULT_MIN_RELEVANCE} (no title)", pairs, lambda p: clears(p["share"], DEFAULT_MIN_RELEVANCE))
    for floor in FLOORS:
        mark = " (default)" if floor == DEFAULT_MIN_RELEVANCE else " (off)" if floor == 0 else ""
        row(f"floor {floor}{mark}", pairs, lambda p, f=floor: clears(p["score"], f))
    row(f"floor {DEFAULT_MIN_RELEVANCE} and >= 0.5 x best", pairs,
        lambda p: clears(p["score"], DEFAULT_MIN_RELEVANCE) and old.get(id(p), True))
    left = [q for q in questions - uncovered
            if not any(clears(p["score"], DEFAULT_MIN_RELEVANCE) for p in pairs if p["question"] == q)]
    trapped = [q for q in uncovered if any(clears(p["score"], DEFAULT_MIN_RELEVANCE) for p in pairs if p["question"] == q)]
    print(f"at the default floor: {len(left)} of {len(questions) - len(uncovered)} questions with a relevant "
          f"passage get none; {len(trapped)} of {len(uncovered)} questions with none get some\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default=os.path.join(ROOT, "bench", "data", "relevance_pairs.json"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "datasets", "corpus"))
    args = ap.parse_args()
    with open(args.pairs, encoding="utf-8") as f:
        pairs = json.load(f)
    for p in pairs:
        p["score"] = passage_score(p["question"], p["title"], p["passage"])
        p["share"] = relevance(content_words(p["question"]), content_words(f"{p['title']}\n{p['passage']}"))
    old = relative_rule(pairs, Bm25Corpus(args.corpus))
    for name in ("tuning", "held-out"):
        table(name, [p for p in pairs if p["set"] == name], old)
    table("both", pairs, old)


if __name__ == "__main__":
    main()
