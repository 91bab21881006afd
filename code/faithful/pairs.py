"""Training and held-out records for the faithfulness checker, made from our own texts.

    python -m realign.faithful.pairs --out /tmp/records.jsonl     # the training records, one a line

Sources: datasets/faithful/sources_*.txt, written by us (see the README there). Each item is a
request (Q), an original answer (A), faithful rewrites of it (R, R2: every fact kept), plausible
claims the answer does not make (C), sentences that contradict it (X) and lines of R with one fact
dropped or blurred (L).

A record is {"id", "question", "original", "rewrite", "kind", "flaw"} (item_records): the faithful
rewrites, and rewrites with one flaw each: a C line put in, an X line in place of the sentence it
contradicts, an L line in place of its sentence, a line dropped or a detail blurred (perturb.py),
the last verdict, number or quantifier changed, the request restated.

Items are split by id: held_out(id) items are never trained on; bench/faithful_quality.py's "own"
set (heldout_records) is made from them, one record of each kind per item.
"""

import argparse
import glob
import hashlib
import json
import os
import random
import re

from realign.faithful import perturb
from realign.faithful.text import stems

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = os.path.join(ROOT, "datasets", "faithful")


_FIELD = re.compile(r"^(Q|A|R2|R|C|X|L): ?(.*)$")
_TEXT_FIELDS = {"Q": "question", "A": "answer", "R": "rewrite", "R2": "rewrite2"}
_LINE_FIELDS = {"C": "claims", "X": "contradictions", "L": "lost"}


def parse_sources(folder=SOURCES):
    """[{"id", "question", "answer", "rewrite", "rewrite2", "claims": [...], "contradictions": [...],
    "lost": [...]}] from the sources_*.txt files of `folder` (block format: see the README there;
    R2, a second faithful rewrite, and L, lines of R with a fact dropped or blurred, may be absent:
    "" and [])."""
    items = []
    for path in sorted(glob.glob(os.path.join(folder, "sources_*.txt"))):
        item, field = None, None
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("### "):
                    item = {"id": line[4:].strip(), "question": "", "answer": "", "rewrite": "", "rewrite2": "",
                            "claims": [], "contradictions": [], "lost": []}
                    items.append(item)
                    field = None
                    continue
                if item is None or (line.startswith("#") and field is None):
                    continue
                m = _FIELD.match(line)
                if m:
                    field = m.group(1)
                    if field in _LINE_FIELDS:
                        item[_LINE_FIELDS[field]].append(m.group(2))
                    else:
                        item[_TEXT_FIELDS[field]] = m.group(2)
                elif field in _TEXT_FIELDS:
                    item[_TEXT_FIELDS[field]] += "\n" + line
    for it in items:
        for key in _TEXT_FIELDS.values():
            it[key] = it[key].strip()
    return items


def held_out(item_id):
    """One item in five, by a hash of its id: never trained on."""
    return hashlib.md5(item_id.encode()).digest()[0] % 5 == 0


def _insert_claim(rewrite, claim, rng):
    """`claim` added to `rewrite`: after a paragraph, or as one more list item."""
    lines = rewrite.split("\n")
    items = [i for i, line in enumerate(lines) if re.match(r"^\s*(?:[-*]|\d+[.)])\s+", line)]
    if items and rng.random() < 0.6:
        i = rng.choice(items)
        marker = re.match(r"^(\s*(?:[-*]|\d+[.)])\s+)", lines[i]).group(1)
        lines.insert(i + 1, marker + claim)
        return "\n".join(lines)
    paras = [i for i, line in enumerate(lines) if line.strip() and line.strip()[-1:] in ".!?"]
    if not paras:
        return rewrite + "\n\n" + claim
    i = rng.choice(paras)
    lines[i] = lines[i] + " " + claim
    return "\n".join(lines)


def _edit_line(rewrite, fn, rng, last=False):
    """`rewrite` with one sentence changed by fn (a perturb rule), or None."""
    lines = rewrite.split("\n")
    order = list(range(len(lines)))
    if last:
        order.reverse()
    else:
        rng.shuffle(order)
    for i in order:
        if len(lines[i].split()) < 3:
            continue
        new = fn(lines[i], rng)
        if new and new != lines[i]:
            lines[i] = new
            return "\n".join(lines)
    return None


def _drop_fact(item, rng):
    """The rewrite with one fact of the original gone: a line dropped or a detail blurred."""
    r = item["rewrite"]
    lines = r.split("\n")
    cands = [i for i, line in enumerate(lines) if len(line.split()) >= 4]
    if rng.random() < 0.5:
        out = _edit_line(r, perturb.blur, rng)
        if out:
            return out
    if len(cands) > 2:
        i = rng.choice(cands[1:])
        return "\n".join(lines[:i] + lines[i + 1:])
    return _edit_line(r, perturb.blur, rng)


def _restate(item):
    """A "rewrite" that restates the request instead of answering it."""
    q = item["question"]
    m = re.search(r"[\"“](.{40,}?)[\"”]", q, re.S)
    body = m.group(1) if m else q
    return "## Your request\n\n" + body


_MARKER = re.compile(r"^(\s*(?:(?:[-*+•]|\d{1,3}[.)])\s+)?(?:\*\*[^*]{1,40}\*\*:?\s*)?)")
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“(])")


def _replace_best(rewrite, sentence, must_lose=False):
    """`rewrite` with its line or sentence that shares the most words with `sentence` replaced by
    it (a hand-written contradiction X, or L: a line of R with a fact dropped). With must_lose, None
    unless some content word of the rewrite is gone after the edit (else nothing was lost)."""
    want = set(stems(sentence))
    if not want:
        return None
    lines = rewrite.split("\n")
    best = None
    own_prefix = _MARKER.match(sentence).group(1)
    for i, line in enumerate(lines):
        prefix = _MARKER.match(line).group(1)
        if own_prefix and own_prefix.strip() == prefix.strip():
            prefix = ""   # the new text brings the line's own marker or label
        body = line[len(prefix):]
        parts = _SENT.split(body)
        spans = [(body, 0, len(body))]
        at = 0
        for part in parts if len(parts) > 1 else []:
            start = body.index(part, at)
            spans.append((part, start, start + len(part)))
            at = start + len(part)
        for text, a, b in spans:
            have = set(stems(text))
            if not have:
                continue
            score = len(want & have) / len(want | have)
            if best is None or score > best[0]:
                best = (score, i, len(prefix) + a, len(prefix) + b)
    if best is None or best[0] < 0.2:
        return None
    _, i, a, b = best
    lines[i] = lines[i][:a] + sentence + lines[i][b:]
    out = "\n".join(lines)
    if must_lose and not set(stems(rewrite)) - set(stems(out)):
        return None
    return out


def item_records(it, rng, every=True):
    """Records {"id", "question", "original", "rewrite", "kind", "flaw"} made from one item: its
    faithful rewrites R and R2 (kind "faithful") and flawed ones: added_claim (a C line put into
    R or R2), contradiction (an X line in place of the sentence it contradicts, else a rule-made
    negation, antonym or order swap), lost_fact (an L line in place of its sentence of R, or a
    line dropped or blurred), changed_conclusion (the last verdict, number or quantifier changed)
    and restates_request. `flaw` is the text put in (or for lost_fact, the R text edited away).
    every=False makes one record of each kind; every=True one per C, X and L line."""
    base = {"id": it["id"], "question": it["question"], "original": it["answer"]}
    hosts = [r for r in (it["rewrite"], it.get("rewrite2")) if r]
    out = [{**base, "rewrite": r, "kind": "faithful", "flaw": ""} for r in hosts]
    for n, c in enumerate(it["claims"] if every else it["claims"][:1]):
        out.append({**base, "rewrite": _insert_claim(hosts[n % len(hosts)], c, rng), "kind": "added_claim", "flaw": c})
    made = 0
    for x in it["contradictions"] if every else it["contradictions"][:1]:
        flawed = _replace_best(it["rewrite"], x)
        if flawed:
            out.append({**base, "rewrite": flawed, "kind": "contradiction", "flaw": x})
            made += 1
    if not made:
        flawed = _edit_line(it["rewrite"], lambda s, g: perturb.FLAWS[g.choice(["negate", "antonym", "order"])](s, g),
                            rng)
        if flawed:
            out.append({**base, "rewrite": flawed, "kind": "contradiction", "flaw": ""})
    made = 0
    for line in it.get("lost", []):
        if made and not every:
            break
        lost = _replace_best(it["rewrite"], line, must_lose=True)
        if lost:
            out.append({**base, "rewrite": lost, "kind": "lost_fact", "flaw": line})
            made += 1
    if not made or every:
        lost = _drop_fact(it, rng)
        if lost:
            out.append({**base, "rewrite": lost, "kind": "lost_fact", "flaw": ""})
    changed = (_edit_line(it["rewrite"], perturb.flip_verdict, rng, last=True)
               or _edit_line(it["rewrite"], perturb.change_number, rng, last=True)
               or _edit_line(it["rewrite"], perturb.change_quantifier, rng, last=True))
    if changed:
        out.append({**base, "rewrite": changed, "kind": "changed_conclusion", "flaw": ""})
    out.append({**base, "rewrite": _restate(it), "kind": "restates_request", "flaw": ""})
    return out


def heldout_records(items, seed=1):
    """Records {"question", "original", "rewrite", "kind"} made from the held-out items, one of each
    kind per item (item_records with every=False): bench/faithful_quality.py's "own" set."""
    rng = random.Random(seed)
    return [r for it in items if held_out(it["id"]) for r in item_records(it, rng, every=False)]


def training_records(items, seed=0):
    """Records of the items that are not held out, one per C, X and L line (item_records)."""
    rng = random.Random(seed)
    return [r for it in items if not held_out(it["id"]) for r in item_records(it, rng, every=True)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSONL file for the training records")
    ap.add_argument("--sources", default=SOURCES, help="folder of sources_*.txt")
    args = ap.parse_args()
    records = training_records(parse_sources(args.sources))
    with open(args.out, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    from collections import Counter
    print(f"{len(records)} records;", dict(Counter(r["kind"] for r in records).most_common()))


if __name__ == "__main__":
    main()
