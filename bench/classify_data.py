"""What the classifier's training data looks like: tasks, and how much of it is real-use style.

    python bench/classify_data.py [FILE ...]     # default: our training and held-out files

Real prompts are messy, and a model trained on clean one-line commands does badly on them, so
the training data must be at least 40 % in that style. "Messy" is measured here by surface
signs any reader can check, each counted on its own and together:

  pasted    long pasted material (a document, code, a log) around the ask: over 400 characters,
            or a code fence, or several lines of material
  persona   persona framing: "act as", "you are a", "I'm a nurse and", "as a teacher, ..."
  chatty    greetings, thanks, "pls", "quick question"
  casual    starts in lower case, or a short prompt (under 120 characters) with no closing
            punctuation
  foreign   written mostly outside ASCII, or in a common non-English phrasing
  markdown  headings, bullets, bold, numbered lists
  multi     several asks in one message (two or more question marks, "also", "and then")

A prompt with any sign is counted as messy. The signs are deliberately plain; the table
prints each one so the count can be judged.
"""

import os
import re
import sys
from collections import Counter

from realign.classifier.data import load_labeled
from realign.constant import TASKS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FILES = [os.path.join(ROOT, "datasets", "classification", f"task_classifier_{part}_dataset.json")
                 for part in ("train", "test")]

_PERSONA = re.compile(r"\b(act as|acting as|you are an? |you're an? |pretend (to be|you)|imagine you|"
                      r"i'?m an? [a-z]+|i am an? [a-z]+|as an? [a-z]+( [a-z]+)?,)", re.I)
_CHATTY = re.compile(r"^\W*(hi|hii+|hello|hey|heya|yo|good (morning|afternoon|evening)|dear)\b|\b(thanks|thank you|"
                     r"thx|ty|pls|plz|please help|quick question|lol|btw|asap|u|ur)\b", re.I)
_FOREIGN = re.compile(r"\b(por favor|bitte|merci|s'il vous|porque|wie|qué|cómo|est-ce|warum|ich|wir|nous|"
                      r"vous|pourquoi|para|podrias|puedes|kannst|könnten)\b", re.I)
_MARKDOWN = re.compile(r"(^|\n)\s*(#{1,4} |[-*•] |\d+[.)] )|\*\*|`", re.M)
_MULTI = re.compile(r"\?.*\?|\b(also|and then|plus|another thing|second(ly)?|oh and)\b", re.I | re.S)


def style(text):
    """The messy-style signs of one prompt, as a set of names (empty: clean)."""
    signs = set()
    lines = [line for line in text.splitlines() if line.strip()]
    if len(text) > 400 or "```" in text or len(lines) >= 4:
        signs.add("pasted")
    if _PERSONA.search(text):
        signs.add("persona")
    if _CHATTY.search(text):
        signs.add("chatty")
    stripped = text.strip()
    if stripped and (stripped[0].islower() or len(stripped) < 120 and stripped[-1] not in ".?!)\"'`:;*]}>»」。？！"):
        signs.add("casual")
    letters = [c for c in text if c.isalpha()]
    if letters and sum(not c.isascii() for c in letters) > 0.2 * len(letters) or _FOREIGN.search(text):
        signs.add("foreign")
    if _MARKDOWN.search(text):
        signs.add("markdown")
    if _MULTI.search(text):
        signs.add("multi")
    return signs


SIGNS = ("pasted", "persona", "chatty", "casual", "foreign", "markdown", "multi")


def messy_share(texts):
    return sum(bool(style(t)) for t in texts) / len(texts) if texts else 0.0


def summary(path):
    texts, labels = load_labeled(path)
    signs = Counter(s for t in texts for s in style(t))
    print(f"{os.path.relpath(path, ROOT)}: {len(texts)} prompts, {len(set(labels))} tasks, "
          f"messy {messy_share(texts):.1%}, mean {sum(map(len, texts)) / len(texts):.0f} chars")
    print("  signs: " + "  ".join(f"{s} {signs[s] / len(texts):.0%}" for s in SIGNS))
    by_task = {}
    for t, label in zip(texts, labels):
        by_task.setdefault(label, []).append(t)
    print(f"  {'task':<34} {'n':>5} {'messy':>6}")
    for task in TASKS:
        rows = by_task.get(task, [])
        print(f"  {task:<34} {len(rows):>5} {messy_share(rows):>6.0%}")


def main(argv=None):
    for path in (argv if argv else DEFAULT_FILES):
        summary(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
