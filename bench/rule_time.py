"""Benchmark: the filter rules' time on one long answer, as the answer grows.

    python bench/rule_time.py [--words 4000,16000,64000,256000] [--rules open_platypus] [--lines] [--other]

Builds one record whose original is a single line of N words (prose with numbers in every
script — 1,200, 50%, 3k, twelve, 12小时, 十二小时, ١٨ — capitalised names, URLs, a little code), and a
rewrite that keeps it all under a heading (--other: a rewrite that is another such text, so
that most of its numbers and names are new: the worst case for the fact rules). Times every
rule of the preset on that one record
(best of 3), the whole preset, and beside them a plain json dumps+loads of the record (the
reference: linear by construction). The last columns give each time's growth from the previous
size: with 4x the words, linear work grows about 4x; the goal is at most 6x (issue 20 #7).
--lines puts a newline after every sentence instead (the common shape).
"""

import argparse
import importlib.util
import json
import os
import random
import time

from realign.lengths import approx_tokens
from realign.selection import Pair

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORDS = ("the water should steep for hours before you strain it and the grounds stay coarse so the brew "
         "tastes smooth while a paper filter catches the fine silt").split()
NAMES = ["Lisbon", "Kilimanjaro", "Marie Curie", "HydroPeak", "Oslo", "Ming", "Rayleigh"]
NUMBERS = ["1,200", "50%", "3k", "twelve", "12小时", "١٨", "4.5", "$30", "1999", "eighteen", "7 million", "十二小时",
           "三万五千"]


def _name(rng):
    return rng.choice("BCDFGKLMNPRSTVZ") + "".join(rng.choice("aeiou") + rng.choice("lmnrstvk") for _ in range(3))


def make_text(n_words, lines=False, seed=0):
    """One answer of n_words words: half its numbers and names from short lists, half made up (so
    that a text of another seed states many numbers and names this one does not)."""
    rng = random.Random(seed)
    out, sentence = [], []
    for i in range(n_words):
        roll = rng.random()
        word = (rng.choice(NUMBERS) if roll < 0.04 else f"{rng.randint(2, 10 ** 6):,}" if roll < 0.08
                else rng.choice(NAMES) if roll < 0.10 else _name(rng) if roll < 0.12
                else f"https://example.org/p{i}" if roll < 0.121 else "`x = 1`" if roll < 0.123 else rng.choice(WORDS))
        sentence.append(word)
        if len(sentence) >= 12 and rng.random() < 0.2:
            out.append(" ".join(sentence) + ".")
            sentence = []
    out.append(" ".join(sentence) + ".")
    return ("\n" if lines else " ").join(s[0].upper() + s[1:] for s in out)


def load_rules(name):
    spec = importlib.util.spec_from_file_location("rules", os.path.join(ROOT, "rewrite_data_selection.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RULESETS[name]


def best_of(fn, runs=3):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", default="4000,16000,64000,256000", help="answer sizes in words, comma-separated")
    ap.add_argument("--rules", default="open_platypus", help="preset of rewrite_data_selection.py")
    ap.add_argument("--lines", action="store_true", help="one sentence a line instead of one single line")
    ap.add_argument("--other", action="store_true", help="the rewrite is another text (new numbers and names)")
    args = ap.parse_args()
    rules = load_rules(args.rules)
    sizes = [int(s) for s in args.words.split(",")]
    table = {}  # name -> [seconds per size]
    mb = []
    for n in sizes:
        original = make_text(n, args.lines)
        rewrite = "## Cold brew\n\n" + (make_text(n, args.lines, seed=1) if args.other else original)
        mb.append(len(original.encode()) / 1e6)
        p = Pair("x", "How do I make cold brew coffee?", original, rewrite, "how_to_generation", approx_tokens)
        record = {"id": "x", "items": [{"from": "human", "value": p.question}, {"from": "gpt", "value": original,
                                                                               "revised_response": rewrite}]}
        table.setdefault("json round trip (ref)", []).append(best_of(lambda: json.loads(json.dumps(record))))
        for rule in rules:  # a @batched rule takes a list of pairs
            call = (lambda: rule([p])) if getattr(rule, "batched", False) else (lambda: rule(p))
            table.setdefault(rule.__name__, []).append(best_of(call))
        table.setdefault("all rules", []).append(sum(table[r.__name__][-1] for r in rules))
    head = f"{'rule':<28}" + "".join(f"{n:>10,}w" for n in sizes) + "".join(
        f"{'x' + str(b // a):>8}" for a, b in zip(sizes, sizes[1:]))
    print(f"rule time on one answer ({'one sentence a line' if args.lines else 'a single line'}, rewrite "
          f"{'another text' if args.other else 'the original under a heading'}); "
          f"seconds, best of 3; answer MB: " + ", ".join(f"{m:.2f}" for m in mb))
    print(head)
    for name, secs in table.items():
        growth = "".join(f"{b / a:>8.1f}" if a > 1e-5 else f"{'-':>8}" for a, b in zip(secs, secs[1:]))
        print(f"{name:<28}" + "".join(f"{s:>11.4f}" for s in secs) + growth)
    steps = list(zip(table["all rules"], table["all rules"][1:]))
    worst = max((b / a for a, b in steps), default=0)
    print(f"all rules: largest growth over one step {worst:.1f}x (goal <= 6x for 4x the words); "
          f"single rules under 10 ms are timer noise on a shared machine")


if __name__ == "__main__":
    main()
