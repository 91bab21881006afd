"""Training pairs and held-out records for the faithfulness checker, made from our own texts.

    python -m realign.faithful.pairs --out /tmp/pairs.jsonl     # the training pairs, one a line

Sources: datasets/faithful/sources_*.txt, written by us (see the README there). Each item is a
request (Q), an original answer (A), a faithful rewrite of it (R, every fact kept), plausible
claims the answer does not make (C) and sentences that contradict it (X).

A pair is {"premise", "claim", "label", "kind", "direction"}: label 1 when the premise supports
the claim. Both of the checker's directions are made the way checker.py reads a record:
- "unsupported": a claim of a rewrite against its window in question + original;
- "lost": a claim of the original against its window in the rewrite.

Negatives: the flaws of perturb.py on claims of R and A, the C and X sentences, claims of R whose
support was taken out of the source, and, for "lost", rewrites with a claim dropped, blurred or
contradicted. Positives: R's own claims (paraphrased and restructured by hand) and rule-made
restructurings of A (lead-ins, split sentences, lists).

Items are split by id: held_out(id) items are never trained on; bench/faithful_quality.py builds
its record-level held-out set (heldout_records) from them.
"""

import argparse
import glob
import hashlib
import json
import os
import random
import re

from realign.faithful import perturb
from realign.faithful.text import Source, claims, stems

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = os.path.join(ROOT, "datasets", "faithful")
K = 3  # claims in a premise window (checker.py uses the same)


def parse_sources(folder=SOURCES):
    """[{"id", "question", "answer", "rewrite", "claims": [...], "contradictions": [...]}]."""
    items = []
    for path in sorted(glob.glob(os.path.join(folder, "sources_*.txt"))):
        item, field = None, None
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("### "):
                    item = {"id": line[4:].strip(), "question": "", "answer": "", "rewrite": "",
                            "claims": [], "contradictions": []}
                    items.append(item)
                    field = None
                    continue
                if item is None or (line.startswith("#") and field is None):
                    continue
                m = re.match(r"^([QARCX]): ?(.*)$", line)
                if m:
                    field = m.group(1)
                    if field in "CX":
                        item["claims" if field == "C" else "contradictions"].append(m.group(2))
                    else:
                        item[{"Q": "question", "A": "answer", "R": "rewrite"}[field]] = m.group(2)
                elif field in ("Q", "A", "R"):
                    key = {"Q": "question", "A": "answer", "R": "rewrite"}[field]
                    item[key] += "\n" + line
    for it in items:
        for key in ("question", "answer", "rewrite"):
            it[key] = it[key].strip()
    return items


def held_out(item_id):
    """One item in five, by a hash of its id: never trained on."""
    return hashlib.md5(item_id.encode()).digest()[0] % 5 == 0


def _Claims(claim_list):
    """A Source made from a list of claims (rewrites with one claim dropped or edited)."""
    return Source(claim_list=claim_list)


def _pair(source, claim, label, kind, direction):
    window = [source.claims[i] for i in source.window(set(stems(claim)), K)]
    return {"premise": " ".join(window), "window": window, "claim": claim, "label": label, "kind": kind,
            "direction": direction}


def item_pairs(item, rng, others=()):
    """The training pairs of one item (see the module docstring)."""
    q, a, r = item["question"], item["answer"], item["rewrite"]
    src = Source([q, a])
    a_claims, r_claims = claims(a), claims(r)
    out = []
    # ---- unsupported direction: rewrite-side claims against question + original
    for c in r_claims:
        out.append(_pair(src, c, 1, "rewrite", "unsupported"))
    for c in a_claims:
        name = rng.choice(list(perturb.RESTRUCTURE))
        new = perturb.RESTRUCTURE[name](c, rng)
        if new:
            out.append(_pair(src, new, 1, "restructure_" + name, "unsupported"))
    if len(a_claims) > 1:
        i = rng.randrange(len(a_claims) - 1)
        out.append(_pair(src, a_claims[i].rstrip(".") + ", and " + a_claims[i + 1][0].lower() + a_claims[i + 1][1:],
                         1, "merged", "unsupported"))
    for c in rng.sample(r_claims + a_claims, min(len(r_claims + a_claims), 8)):
        names = list(perturb.FLAWS)
        rng.shuffle(names)
        for name in names:
            new = perturb.FLAWS[name](c, rng)
            if new and new != c:
                out.append(_pair(src, new, 0, name, "unsupported"))
                break
    for c in item["claims"]:
        out.append(_pair(src, c, 0, "added", "unsupported"))
        if r_claims and rng.random() < 0.5:   # an added claim tacked onto a faithful sentence
            host = rng.choice(r_claims).rstrip(".")
            out.append(_pair(src, f"{host}, and {c[0].lower()}{c[1:]}", 0, "added_joined", "unsupported"))
    for c in item["contradictions"]:
        out.append(_pair(src, c, 0, "contradiction", "unsupported"))
    for c in r_claims:  # a rewrite claim whose support is taken out of the source
        cs = set(stems(c))
        if len(cs) < 3 or src.covered(cs, K) < 0.6:
            continue
        keep = [x for x in claims(q) + a_claims if len(set(stems(x)) & cs) < 2]
        rest = _Claims(keep)
        if keep and len(cs & rest.all_stems) / len(cs) < 0.5:
            out.append(_pair(rest, c, 0, "support_removed", "unsupported"))
    if others:
        other = rng.choice(others)
        pool = claims(other["answer"])
        if pool:
            out.append(_pair(src, rng.choice(pool), 0, "unrelated", "unsupported"))
    # ---- lost direction: original claims against the rewrite
    rsrc = _Claims(r_claims)
    for c in a_claims:
        out.append(_pair(rsrc, c, 1, "kept", "lost"))
    restructured = []
    for c in a_claims:
        name = rng.choice(list(perturb.RESTRUCTURE))
        restructured.append(perturb.RESTRUCTURE[name](c, rng) or c)
    if restructured:
        rs = _Claims(restructured)
        for c in rng.sample(a_claims, min(2, len(a_claims))):
            out.append(_pair(rs, c, 1, "kept_restructured", "lost"))
        j = rng.randrange(len(a_claims))
        dropped = _Claims(restructured[:j] + restructured[j + 1:])
        cs = set(stems(a_claims[j]))
        if cs and len(cs & dropped.all_stems) / len(cs) < 0.6:
            out.append(_pair(dropped, a_claims[j], 0, "dropped", "lost"))
    for j in rng.sample(range(len(r_claims)), min(3, len(r_claims))):
        minus = _Claims(r_claims[:j] + r_claims[j + 1:])
        for c in a_claims:
            cs = set(stems(c))
            if not cs:
                continue
            full, part = rsrc.covered(cs, K), minus.covered(cs, K)
            if full - part >= 0.3 and len(cs & minus.all_stems) / len(cs) < 0.6:
                out.append(_pair(minus, c, 0, "dropped", "lost"))
    for j in rng.sample(range(len(r_claims)), min(4, len(r_claims))):
        blurred = perturb.blur(r_claims[j], rng)
        if not blurred:
            continue
        edited = _Claims(r_claims[:j] + [blurred] + r_claims[j + 1:])
        gone = set(stems(r_claims[j])) - set(stems(blurred)) - edited.all_stems
        gone -= {"and", "or"}
        for c in a_claims:
            if gone & set(stems(c)):
                out.append(_pair(edited, c, 0, "blurred", "lost"))
    for j in rng.sample(range(len(r_claims)), min(3, len(r_claims))):
        names = list(perturb.FLAWS)
        rng.shuffle(names)
        for name in names:
            new = perturb.FLAWS[name](r_claims[j], rng)
            if new and new != r_claims[j]:
                break
        else:
            continue
        edited = _Claims(r_claims[:j] + [new] + r_claims[j + 1:])
        rj = set(stems(r_claims[j]))
        best = max(a_claims, key=lambda c: len(set(stems(c)) & rj) / (len(set(stems(c))) or 1), default=None)
        if best and len(set(stems(best)) & rj) >= 0.6 * len(set(stems(best)) or {0}):
            out.append(_pair(edited, best, 0, "contradicted_" + name, "lost"))
    return out


def training_pairs(items, rounds=3, seed=0):
    """All training pairs of the items that are not held out, `rounds` draws of the rules each."""
    train = [it for it in items if not held_out(it["id"])]
    rng = random.Random(seed)
    out = []
    for _ in range(rounds):
        for it in train:
            out.extend(item_pairs(it, rng, [o for o in train if o is not it]))
    return out


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


def heldout_records(items, seed=1):
    """Records {"question", "original", "rewrite", "kind"} made from the held-out items: the faithful
    rewrite (kind "faithful") and one rewrite per flaw kind: added_claim, contradiction, lost_fact,
    changed_conclusion, restates_request."""
    rng = random.Random(seed)
    out = []
    for it in (x for x in items if held_out(x["id"])):
        base = {"id": it["id"], "question": it["question"], "original": it["answer"]}
        out.append({**base, "rewrite": it["rewrite"], "kind": "faithful"})
        if it["claims"]:
            out.append({**base, "rewrite": _insert_claim(it["rewrite"], it["claims"][0], rng), "kind": "added_claim"})
        flawed = _edit_line(it["rewrite"], lambda s, g: perturb.FLAWS[g.choice(["negate", "antonym", "order"])](s, g),
                            rng)
        if flawed:
            out.append({**base, "rewrite": flawed, "kind": "contradiction"})
        lost = _drop_fact(it, rng)
        if lost:
            out.append({**base, "rewrite": lost, "kind": "lost_fact"})
        changed = (_edit_line(it["rewrite"], perturb.flip_verdict, rng, last=True)
                   or _edit_line(it["rewrite"], perturb.change_number, rng, last=True)
                   or _edit_line(it["rewrite"], perturb.change_quantifier, rng, last=True))
        if changed:
            out.append({**base, "rewrite": changed, "kind": "changed_conclusion"})
        out.append({**base, "rewrite": _restate(it), "kind": "restates_request"})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSONL file for the training pairs")
    ap.add_argument("--rounds", type=int, default=3, help="draws of the perturbation rules per item")
    args = ap.parse_args()
    pairs = training_pairs(parse_sources(), args.rounds)
    with open(args.out, "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    from collections import Counter
    print(f"{len(pairs)} pairs, {sum(p['label'] for p in pairs)} supported;",
          dict(Counter(p["kind"] for p in pairs).most_common()))


if __name__ == "__main__":
    main()
