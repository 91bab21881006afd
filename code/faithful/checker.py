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
DEFAULT_THRESHOLDS = {UNSUPPORTED: 0.5, LOST: 0.5, RESTATES: 0.6}
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

    def __init__(self, folder=MODEL_DIR, workers=None, thresholds=None):
        from realign.classifier.encoder import SentenceEncoder, usable_cpus
        from realign.classifier.model import DEFAULT_MODEL_DIR

        self.workers = workers or min(usable_cpus(), 8)
        with np.load(os.path.join(folder, HEAD_FILE)) as f:
            self.head = {k: f[k] for k in f.files}
        self.encoder = SentenceEncoder(DEFAULT_MODEL_DIR, workers=self.workers)
        meta_path = os.path.join(folder, META_FILE)
        self.meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
        self.thresholds = {**DEFAULT_THRESHOLDS, **self.meta.get("thresholds", {}), **(thresholds or {})}

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
        """The model inputs one record needs: [(direction, window, claim)], and a restates score."""
        question, original, rewrite = question[:MAX_CHARS], original[:MAX_CHARS], rewrite[:MAX_CHARS]
        evidence = [e[:MAX_CHARS] for e in evidence]
        share = restated_share(question, original, rewrite)
        src = Source([question, original, *evidence], code=True)
        own = Source([rewrite])
        rsrc = Source([rewrite], code=True)
        todo = []
        # the model reads prose, not code: a rewrite explaining the original's code ("both sort
        # sizes largest first") cannot be judged against it, so such records are read one way only
        explains_code = bool(_CODE.search(original))
        for c, ws, cs in list(zip(own.claims, own.words, own.stems))[:0 if explains_code else MAX_CLAIMS]:
            if arithmetic and _ARITHMETIC.search(c):
                continue   # a worked step: the number rules check its numbers
            if not settled_unsupported(ws, cs, src):
                todo.append((UNSUPPORTED, [src.claims[i] for i in src.window(cs, K)], c))
        osrc = Source([original])
        for c, ws, cs in list(zip(osrc.claims, osrc.words, osrc.stems))[:MAX_CLAIMS]:
            if not settled_lost(ws, cs, rsrc):
                todo.append((LOST, [rsrc.claims[i] for i in rsrc.window(cs, K)], c))
        return todo, share, rewrite

    def _verdict(self, todo, scores, share, rewrite):
        v = Verdict(pairs=len(todo))
        for (direction, _, claim), score in zip(todo, scores):
            if direction not in v.lowest or score < v.lowest[direction][0]:
                v.lowest[direction] = (float(score), claim)
        if share >= self.thresholds[RESTATES]:
            first = next(iter(claims(rewrite)), rewrite.strip()[:80])
            return Verdict(True, RESTATES, first, round(share, 3), self.thresholds[RESTATES], v.lowest, v.pairs)
        worst = None
        for direction in (UNSUPPORTED, LOST):
            if direction in v.lowest:
                score, claim = v.lowest[direction]
                margin = score - self.thresholds[direction]
                if margin < 0 and (worst is None or margin < worst[0]):
                    worst = (margin, direction, claim, score)
        if worst:
            _, v.direction, v.sentence, v.score = worst
            v.flagged, v.threshold = True, self.thresholds[v.direction]
        return v

    def check(self, question, original, rewrite, evidence=(), arithmetic=False):
        """The Verdict on one record (arithmetic=True for math tasks: worked steps are not read)."""
        return self.score_many([(question, original, rewrite, evidence)], arithmetic=arithmetic)[0]

    def score_many(self, records, progress=None, arithmetic=False):
        """Verdicts for many records at once: records are (question, original, rewrite, evidence)
        tuples, or with a fifth item, arithmetic (True for a math task: see check); all their model
        inputs go through the model together."""
        plans = [self._plan(*rec[:3], tuple(rec[3] or ()), rec[4] if len(rec) > 4 else arithmetic)
                 for rec in records]
        scores = self.score_pairs([pair for todo, _, _ in plans for pair in todo])
        out, at = [], 0
        for todo, share, rewrite in plans:
            out.append(self._verdict(todo, scores[at:at + len(todo)], share, rewrite))
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
