"""What the checker's clause model reads about one "added" or "lost" finding (align.py).

    clause_features(finding, cosine) -> list of N_FEATURES floats

A finding is a clause of one side whose content words the other side lacks. Beside how many are
missing and how rare they are (a paraphrase swaps in everyday words; an added claim or a lost
detail brings its own), the model reads the highest cosine of the clause with the other side's
sentences that share most words with it, from the sentence encoder the classifier already ships
(all-MiniLM-L6-v2, int8 ONNX): a clause said there in other words scores high.
"""

import math

from realign.faithful.align import rarity

N_FEATURES = 11
NAMES = ("missing", "log missing", "words missing", "share missing (weighted)", "share missing",
         "cosine", "log content words", "log content (weighted)", "cosine x missing", "rarest missing",
         "rare words missing")


def clause_features(finding, cosine):
    """The N_FEATURES floats of one finding; `cosine` None when the encoder did not read it."""
    score, n_new, total, n_content = finding.facts
    cos = 0.5 if cosine is None else cosine
    rare = [rarity(w) for w in finding.missing] or [0.0]
    return [score, math.log1p(score), n_new, score / max(total, 1e-3), n_new / max(n_content, 1), cos,
            math.log1p(n_content), math.log1p(total), cos * score, max(rare), sum(r >= 0.5 for r in rare)]
