"""Does a rewrite keep the meaning of its original? A small checker on CPU (onnxruntime + numpy, no torch).

    from realign.faithful import Checker
    checker = Checker()                       # ~0.3 s: the classifier's sentence encoder and a head
    v = checker.check(question, original, rewrite, evidence=())
    v.flagged, v.direction, v.sentence, v.score
    verdicts = checker.score_many([(question, original, rewrite, evidence), ...])   # batched

It judges in both directions, sentence by sentence (SummaC's idea; training on rule-made
perturbations of our own texts is FactCC's):
- "unsupported": every claim of the rewrite must be supported by question + original + evidence;
- "lost": every claim of the original must still be supported by the rewrite;
and one lexical check, "restates the request": a rewrite whose content words come from the
request rather than the original (the incoming e-mail copied back, the asker's criteria listed).

Each claim is read against its window: the K claims of the other side that share the most words
with it (text.py). Claims the other side states word for word, or whose content words all stand in
one sentence of the other side with the same negations and no order words, are settled without the
model; the rest are scored in one batch. The shipped model (model/head.npz, train_head.py) is a
logistic regression on alignment facts and the cosines of the sentence encoder the classifier
already ships (features.py), so the checker adds about 1 KB to the package.
A record is flagged when its lowest score in a direction is under that direction's threshold
(model/meta.json, tuned on the dev sets: see bench/README.md, "faithfulness checker").
"""

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from realign.faithful.align import findings
from realign.faithful.text import Source, bigrams, claims, stem, stems, words

MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")
HEAD_FILE = "head.npz"    # the head on the classifier's sentence encoder (train_head.py)
META_FILE = "meta.json"
K = 3              # claims of the other side in a premise window
MAX_CLAIMS = 60    # claims read per side of a record (a longer text is judged on its first ones)
MAX_CHARS = 20_000  # characters read of each text (question, original, rewrite, each passage): bounded work
UNSUPPORTED, LOST, RESTATES = "unsupported", "lost", "restates the request"
ORDER_WORDS = frozenset("before after then first last than until earlier later prior following".split())
NEGATIONS = frozenset("not never no without nor none neither".split())
# words of layout and lead-ins ("In short:", "Key points", "Step 2", "Answer"): a heading made of
# them says nothing to check
LAYOUT = frozenset(stem(w) for w in """short summary overview step steps tip tips note notes answer conclusion
explanation example examples key point points detail details introduction option options final result results
bottom line quick version here following below above follow these main takeaway takeaways why how what
solution working method approach background context recap reminder important list""".split())
ADDED_WORDS, ADDED_COS = "added words", "added cosine"
LOST_WORDS, LOST_COS = "lost words", "lost cosine"
DEFAULT_THRESHOLDS = {UNSUPPORTED: 0.5, LOST: 0.5, RESTATES: 0.6, ADDED_WORDS: 2.0, ADDED_COS: 0.6,
                      LOST_WORDS: 2.0, LOST_COS: 0.6}
RESTATE_LEAST = 5  # content words from the request, at least, before a rewrite can count as restating it


@dataclass
class Verdict:
    """What the checker found in one record. `direction` is None when nothing was flagged; else the
    flagged `sentence` (of the rewrite for "unsupported", of the original for "lost", the start of
    the rewrite for "restates the request") and its `score` (P(supported), or for "restates the
    request" the share of the rewrite's words that come from the request)."""
    flagged: bool = False
    direction: str = None
    sentence: str = None
    score: float = None
    threshold: float = None
    lowest: dict = field(default_factory=dict)   # direction -> (score, sentence) of its lowest claim
    pairs: int = 0                                # claims the model scored
    kind: str = None       # what was found: contradiction, verdict, added, lost, restates, model
    detail: str = None     # how: "'smaller' became 'larger'", "new words: ...", "missing: ..."

    def reason(self):
        """One line for the report: what was found, how, and the sentence (None when not flagged)."""
        if not self.flagged:
            return None
        said = repr(self.sentence[:200])
        if self.kind == "restates":
            return f"the checker: the rewrite restates the request instead of answering it ({self.detail}): {said}"
        if self.kind == "contradiction":
            return f"the checker: rewrite sentence contradicts the original ({self.detail}): {said}"
        if self.kind == "verdict":
            return f"the checker: the rewrite changes the original's verdict ({self.detail}): {said}"
        if self.kind == "added":
            return f"the checker: rewrite sentence unsupported by the question, original or evidence ({self.detail}): {said}"
        if self.kind == "lost":
            return f"the checker: original sentence lost in the rewrite ({self.detail}): {said}"
        where = ("rewrite sentence unsupported by the question, original or evidence" if self.direction == UNSUPPORTED
                 else "original sentence lost in the rewrite")
        return f"the checker: {where} (score {self.score:.2f} < {self.threshold:.2f}): {said}"


def _negations(ws):
    return sum(w in NEGATIONS for w in ws)


_ARITHMETIC = re.compile(r"[=×÷+*/−^√]|\d\s*-\s*\d")
_CODE = re.compile(r"```|`[^`\n]{8,}`")


def settled_unsupported(ws, cs, src):
    """Is a claim of the rewrite (its words `ws`, stems `cs`) plainly stated by `src` (question +
    original + evidence): said word for word, or all its content words in one sentence there with
    as many negations and no order words ("before", "then", "than")? A claim of one content word
    that the source has (a heading) or of none (a filler line: "Here's how:") is settled too."""
    named = {s for s in cs if not s.isdigit() and s not in LAYOUT}
    if not named or (len(named) == 1 and named <= src.all_stems):
        return True
    if bigrams(ws) <= src.bigrams:
        return True
    if ORDER_WORDS.intersection(ws):
        return False
    negations = _negations(ws)
    return any(cs <= src.stems[i] and negations == _negations(src.words[i]) for i in src.window(cs, K))


def settled_lost(ws, cs, rsrc):
    """Is a claim of the original (words `ws`, stems `cs`) plainly still in the rewrite `rsrc`:
    said word for word, or all its content words in its window there?"""
    if sum(not s.isdigit() for s in cs) < 2:
        return True
    if bigrams(ws) <= rsrc.bigrams:
        return True
    have = set().union(*(rsrc.stems[i] for i in rsrc.window(cs, K))) if rsrc.claims else set()
    return cs <= have


def restated_share(question, original, rewrite, least=RESTATE_LEAST):
    """How much of the rewrite's content comes from the request rather than the original: of the
    rewrite's content words found in only one of the two, the share found in the request (0.0 when
    fewer than `least` come from the request, or when the rewrite keeps half the original's own
    words, as a worked solution restating the givens does). A rewrite that copies or paraphrases the incoming
    e-mail, or lists the asker's own criteria back, scores near 1; an answer scores near 0."""
    rs, qs, os_ = set(stems(rewrite)), set(stems(question)), set(stems(original))
    from_request, from_original = (rs & qs) - os_, (rs & os_) - qs
    if len(from_request) < least or len(from_original) >= 0.5 * len(os_ - qs):
        return 0.0   # too little of the request, or half the original's own words are there: an answer
    return len(from_request) / (len(from_request) + len(from_original))


class Checker:
    """The faithfulness checker; see the module docstring. The sentence encoder runs on `workers`
    threads (default: one per usable core); `thresholds` override model/meta.json's."""

    def __init__(self, folder=MODEL_DIR, workers=None, thresholds=None, use_head=None):
        from realign.classifier.encoder import SentenceEncoder, usable_cpus
        from realign.classifier.model import DEFAULT_MODEL_DIR

        self.workers = workers or min(usable_cpus(), 8)
        with np.load(os.path.join(folder, HEAD_FILE)) as f:
            self.head = {k: f[k] for k in f.files}
        self.encoder = SentenceEncoder(DEFAULT_MODEL_DIR, workers=self.workers)
        meta_path = os.path.join(folder, META_FILE)
        self.meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
        self.thresholds = {**DEFAULT_THRESHOLDS, **self.meta.get("thresholds", {}), **(thresholds or {})}
        self.use_head = self.meta.get("use_head", True) if use_head is None else use_head

    # ------------------------------------------------------------ the model

    def score_pairs(self, pairs):
        """P(supported) for each (direction, window, claim), float32 array, in input order."""
        if not pairs:
            return np.ones(0, dtype=np.float32)
        return self._head(pairs)

    def _head(self, pairs):
        from realign.faithful.features import features

        x = features(pairs, self.encoder)
        if "cols" in self.head:
            x = x[:, self.head["cols"]]
        h = (x - self.head["mean"]) / self.head["scale"]
        layer = 0
        while f"w{layer + 1}" in self.head:
            h = np.maximum(h @ self.head[f"w{layer}"] + self.head[f"b{layer}"], 0)
            layer += 1
        z = (h @ self.head[f"w{layer}"] + self.head[f"b{layer}"]).ravel()
        return (1 / (1 + np.exp(-z))).astype(np.float32)

    # ------------------------------------------------------------ records

    def _plan(self, question, original, rewrite, evidence, arithmetic=False):
        """What one record needs: the word-alignment findings (align.py), the model inputs of the
        head [(direction, window, claim)] when it is on, and the restates score."""
        question, original, rewrite = question[:MAX_CHARS], original[:MAX_CHARS], rewrite[:MAX_CHARS]
        evidence = [e[:MAX_CHARS] for e in evidence]
        share = restated_share(question, original, rewrite)
        # the word checks read prose, not code: a rewrite explaining the original's code ("both
        # sort sizes largest first") cannot be judged against it, so such records are read one way only
        explains_code = bool(_CODE.search(original))
        found = findings(question, original, rewrite, evidence, added_at=self.thresholds[ADDED_WORDS],
                         lost_at=self.thresholds[LOST_WORDS], code=explains_code, arithmetic=arithmetic)
        todo = []
        if self.use_head:
            src = Source([question, original, *evidence], code=True)
            own = Source([rewrite])
            rsrc = Source([rewrite], code=True)
            for c, ws, cs in list(zip(own.claims, own.words, own.stems))[:0 if explains_code else MAX_CLAIMS]:
                if arithmetic and _ARITHMETIC.search(c):
                    continue   # a worked step: the number rules check its numbers
                if not settled_unsupported(ws, cs, src):
                    todo.append((UNSUPPORTED, [src.claims[i] for i in src.window(cs, K)], c))
            osrc = Source([original])
            for c, ws, cs in list(zip(osrc.claims, osrc.words, osrc.stems))[:MAX_CLAIMS]:
                if not settled_lost(ws, cs, rsrc):
                    todo.append((LOST, [rsrc.claims[i] for i in rsrc.window(cs, K)], c))
        return found, todo, share, rewrite

    def _confirm(self, plans):
        """For each "added" or "lost" finding of the plans, the highest cosine of its clause with
        the sentences of its window: a clause the other side says in other words scores high."""
        texts = sorted({t for found, *_ in plans for f in found if f.window for t in (f.clause, *f.window)})
        if not texts:
            return {}
        at = {t: i for i, t in enumerate(texts)}
        vec = self.encoder.encode(texts)
        return {(f.clause, tuple(f.window)): float(max(vec[[at[w] for w in f.window]] @ vec[at[f.clause]]))
                for found, *_ in plans for f in found if f.window}

    def _verdict(self, found, cosines, todo, scores, share, rewrite):
        v = Verdict(pairs=len(todo))
        for (direction, _, claim), score in zip(todo, scores):
            if direction not in v.lowest or score < v.lowest[direction][0]:
                v.lowest[direction] = (float(score), claim)
        if share >= self.thresholds[RESTATES]:
            first = next(iter(claims(rewrite)), rewrite.strip()[:80])
            return Verdict(True, RESTATES, first, round(share, 3), self.thresholds[RESTATES], v.lowest, v.pairs,
                           "restates", f"{share:.0%} of its own words are the request's")
        for f in found:
            if f.kind in ("contradiction", "verdict"):
                return Verdict(True, f.direction, f.sentence, 1.0, None, v.lowest, v.pairs, f.kind, f.detail)
        best = None
        for f in found:
            if f.kind not in ("added", "lost"):
                continue
            cos = cosines.get((f.clause, tuple(f.window)), 0.0)
            limit = self.thresholds[ADDED_COS if f.kind == "added" else LOST_COS]
            if cos < limit and (best is None or cos - limit < best[0]):
                best = (cos - limit, f, cos, limit)
        if best:
            _, f, cos, limit = best
            return Verdict(True, f.direction, f.sentence, round(cos, 3), limit, v.lowest, v.pairs, f.kind,
                           f"{f.detail} (closest there: {cos:.2f})")
        worst = None
        for direction in (UNSUPPORTED, LOST):
            if direction in v.lowest:
                score, claim = v.lowest[direction]
                margin = score - self.thresholds[direction]
                if margin < 0 and (worst is None or margin < worst[0]):
                    worst = (margin, direction, claim, score)
        if worst:
            _, v.direction, v.sentence, v.score = worst
            v.flagged, v.threshold, v.kind = True, self.thresholds[v.direction], "model"
        return v

    def check(self, question, original, rewrite, evidence=(), arithmetic=False):
        """The Verdict on one record (arithmetic=True for math tasks: worked steps are not read)."""
        return self.score_many([(question, original, rewrite, evidence)], arithmetic=arithmetic)[0]

    def score_many(self, records, progress=None, arithmetic=False):
        """Verdicts for many records at once: records are (question, original, rewrite, evidence)
        tuples, or with a fifth item, arithmetic (True for a math task: see check); all their
        encoder inputs go through the encoder together, each unique text once."""
        plans = [self._plan(*rec[:3], tuple(rec[3] or ()), rec[4] if len(rec) > 4 else arithmetic)
                 for rec in records]
        cosines = self._confirm(plans)
        scores = self.score_pairs([pair for _, todo, _, _ in plans for pair in todo])
        out, at = [], 0
        for found, todo, share, rewrite in plans:
            out.append(self._verdict(found, cosines, todo, scores[at:at + len(todo)], share, rewrite))
            at += len(todo)
            if progress is not None:
                progress.update(1)
        return out


_SHARED = {}


def shared_checker():
    """One Checker per process, made on first use (the filter rule calls this)."""
    if "checker" not in _SHARED:
        _SHARED["checker"] = Checker()
    return _SHARED["checker"]


def has_model(folder=MODEL_DIR):
    return os.path.exists(os.path.join(folder, HEAD_FILE))
