"""Every check we make on the text of an answer, in one place.

reformat's reply reader (realign.prompts.read_reply), the filter rules
(rewrite_data_selection.py) and the fact finder (realign.facts) import these, so a refusal, an
echo of our prompt, a fence or a number reads the same in every step:

    refusal_phrase(text)              "I'm sorry, but I" / "As an AI" / None
    echoed_prompt(text, exclude="")     the piece of our rewrite prompt found in text, or None
    template_token(text)              a chat-template token ("<|im_end|>") in text, or None
    whole_fence(text)                 (tag, inside) of a text wrapped whole in one ``` fence, or None
    unwrap_prose_fence(text)          the inside of such a fence when it holds prose, not code
    has_code / code_blocks / code_from / mask_code
    final_number / answer_numbers     the number a worked solution ends on
    open_code_block / ends_mid_sentence
    repeats_itself(text)              True when text ends in a loop (a model stuck until its limit)
    normalized(text)                  text compared loosely (case, punctuation, whitespace)

Each function is a plain detector: it says what it found, and the caller decides what that
means for its step.
"""

import re
import string
import zlib
from dataclasses import dataclass
from functools import lru_cache

from realign.constant import TASK_DESCRIPTIONS, TASK_FORMATS

# ---------------------------------------------------------------- code and fences

_FENCE = re.compile(r"```")
# a whole text in one fence: ```tag info … ```; group 1 the tag, group 2 what is inside
_WHOLE_FENCE = re.compile(r"\A\s*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)\n?[ \t]*```\s*\Z", re.S)
_PROSE_TAGS = ("", "text", "txt", "plain", "plaintext", "markdown", "md")
_DEF_RETURN = re.compile(r"\bdef\s+\w+\s*\(.*?\breturn\b", re.S)
_FENCED_BLOCK = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)
_CODE_SPAN = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.S)  # fenced blocks (an open one to the end) and `inline code`
_CODE_TOKEN = re.compile(r"\w+|[^\w\s]")
_COMMENT = re.compile(r"(?:^|(?<=\s))(?:#|//|--)[^\n]*|/\*.*?\*/|<!--.*?-->", re.S)
_FENCE_LINE = re.compile(r"^[ \t]*```", re.M)


def has_code(text):
    """A fenced block, or a Python function with a return."""
    return bool(_FENCE.search(text) or _DEF_RETURN.search(text))


def code_blocks(text):
    """The contents of the ``` blocks of `text`."""
    return _FENCED_BLOCK.findall(text)


def mask_code(text):
    """`text` with fenced blocks and `inline code` blanked out (same length, so offsets hold):
    code is not a claim."""
    if "`" not in text:
        return text
    return _CODE_SPAN.sub(lambda m: " " * len(m.group()), text)


def code_from(text, source, share=0.75):
    """Is every ``` block of `text` made (share of its tokens, at least; comments left out) of
    tokens that `source` has? Then the rewrite fenced code the original already gave inline or
    unfenced: moved, not added."""
    blocks = code_blocks(text) or ([text] if has_code(text) else [])
    if not blocks:
        return False
    have = set(_CODE_TOKEN.findall(source))
    for block in blocks:
        tokens = _CODE_TOKEN.findall(_COMMENT.sub("", block))
        if tokens and sum(t in have for t in tokens) < share * len(tokens):
            return False
    return True


def whole_fence(text):
    """(tag, inside) when `text` is wrapped whole in one ``` fence with no other fence inside
    (tag is "" for an untagged fence), else None."""
    m = _WHOLE_FENCE.match(text)
    if m and "```" not in m.group(2):
        return m.group(1), m.group(2)
    return None


def unwrap_prose_fence(text):
    """The inside of a reply wrapped whole in one ``` fence (untagged, or tagged text/markdown)
    when what is inside is not code; otherwise `text` unchanged. Some rewriters fence their
    whole answer; that wrapping is not code."""
    fence = whole_fence(text)
    if fence and fence[0].lower() in _PROSE_TAGS and not has_code(fence[1]):
        return fence[1]
    return text


def open_code_block(text):
    """Does `text` end inside a ``` block (an odd number of fence lines)?"""
    return len(_FENCE_LINE.findall(text)) % 2 == 1


# ---------------------------------------------------------------- endings cut off

_DANGLING = frozenset("""the a an and or but nor of that which whose who is are was were be been being its their
his her my your our this these those than because if when while such very from into onto across between
among including like also then whether""".split())


def ends_mid_sentence(text):
    """Does `text` stop where no sentence, list item or line can end: after a comma, colon or
    open bracket, on a word like 'the' or 'and', with bold or a bracket left open, or on a long
    line without a full stop right after a line that had one?"""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return False
    last = lines[-1]
    if last.startswith(("```", "|", "#")) or open_code_block(text):
        return False
    if last[-1] in ",:([{-–—/&" or last.count("**") % 2 == 1 or last.count("(") > last.count(")"):
        return True
    words = re.findall(r"[A-Za-z']+", last)
    if not last[-1].isalnum() or not words:
        return False
    if words[-1].lower() in _DANGLING:
        return True
    # a long line with no full stop after one that had it: the text was cut
    return len(last.split()) >= 8 and len(lines) > 1 and lines[-2][-1:] in ".!?"


# ---------------------------------------------------------------- refusals

_REFUSAL = re.compile(r"""
      \bi(?:'m|’m|\s+am)\s+(?:very\s+|so\s+)?sorry,?\s+(?:but\s+)?(?:i|that|this)\b
    | \bi(?:\s+|'|’)(?:can(?:'|’)?t|cannot|can\s+not|(?:m|am)\s+(?:unable|not\s+able)\s+to|won(?:'|’)t(?:\s+be\s+able\s+to)?|
            will\s+not(?:\s+be\s+able\s+to)?|must\s+decline\s+to)\s+(?:help|assist|provide|fulfil+|comply|answer|
            complete|do\s+that|support|create|generate|write|share|give|respond|engage)
    | \bas\s+an?\s+(?:ai|artificial\s+intelligence|language\s+model|large\s+language\s+model)\b
    | \bi\s+(?:must|have\s+to)\s+(?:respectfully\s+)?(?:decline|refuse)
    | \bi\s+apologi[sz]e,?\s+(?:but|for\s+any\s+confusion)
    | \b(?:unfortunately|sorry),?\s+(?:but\s+)?i\s+(?:can(?:no|'|’)?t|cannot|am\s+unable|don(?:'|’)t\s+have)
    | \bi(?:'m|’m|\s+am)\s+afraid\s+(?:that\s+)?i\s+(?:can(?:no|'|’)?t|cannot|am\s+unable|won(?:'|’)t)
    | \bi\s+(?:do\s+not|don(?:'|’)t)\s+(?:feel\s+comfortable|have\s+(?:access|the\s+ability))
    | \bi(?:'m|’m|\s+am)\s+not\s+(?:allowed|permitted|comfortable)\b
    | \bit\s+(?:is|would\s+be)\s+(?:not\s+appropriate|inappropriate)\s+for\s+me\b
    """, re.I | re.X)

# a text holding none of these cannot match _REFUSAL: most answers are passed over without a regex search
_REFUSAL_HINTS = ("sorry", "can't", "can’t", "cannot", "can not", "unable", "not able", "won't", "won’t",
                  "will not", "decline", "refuse", "apologi", "as a", "as an", "afraid", "comfortable",
                  "have access", "the ability", "allowed", "permitted", "appropriate")


def refusal_phrase(text):
    """The first phrase of `text` that declines or apologises ("I'm sorry, but I", "I cannot
    help", "As an AI"), whitespace collapsed, or None. Sympathy ("I'm sorry to hear that") is
    not a refusal."""
    lower = text.lower()
    if not any(k in lower for k in _REFUSAL_HINTS):
        return None
    m = _REFUSAL.search(text)
    return " ".join(m.group().split()) if m else None


# ---------------------------------------------------------------- chat-template tokens

# Special tokens of chat templates that a server may leave in a reply: ChatML, Llama 3, Gemma,
# Phi, Mistral, DeepSeek, GPT-2/Qwen end of text, and the generic </s>.
_TEMPLATE_TOKEN = re.compile(
    r"<\|(?:im_end|im_start|endoftext|eot_id|end_of_text|start_header_id|end_header_id|end|assistant|user|"
    r"system|eom_id|return|call)\|>|<(?:end_of_turn|start_of_turn)>|</s>|\[/?INST\]|<｜end▁of▁sentence｜>")


def template_token(text):
    """The first chat-template special token in `text` ("<|im_end|>", "<end_of_turn>", "</s>"), or None."""
    m = _TEMPLATE_TOKEN.search(text) if "<" in text or "[" in text else None
    return m.group() if m else None


# ---------------------------------------------------------------- our own prompt echoed back

ECHO_WORDS = 7  # a run of this many words of the prompt's fixed text is an echo (a heading taken
# from a layout line is shorter)
_PLACEHOLDER = re.compile(r"\{[a-z_]*\}")
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class PromptWording:
    """Our rewrite prompt's wording, as echoed_prompt looks for it."""
    grams: frozenset      # ECHO_WORDS-word runs of its fixed text
    firsts: frozenset     # the first words of those runs
    phrases: tuple        # labels and names found anywhere: "[original answer]", "revised response:"
    line_labels: object   # regex: one-word labels where a line starts ("Reasoning:")
    fixed: str            # all its fixed text, lower case, words joined by spaces


@lru_cache(maxsize=1)
def prompt_wording():
    """Everything we put in a rewrite prompt: every text constant of realign.prompts (system
    prompt, template, section labels, added rules) and the task descriptions and layouts of
    constant.py, with the {placeholders} taken out."""
    from realign import prompts  # the rewrite prompt lives there; imported late: prompts imports us

    own = [v for k, v in vars(prompts).items()  # the rewrite prompt's texts, not the classifier's
           if k.isupper() and isinstance(v, str) and len(v) > 12 and "CLS" not in k and "CLASSIFIER" not in k]
    grams, labels, pieces = set(), set(), []
    for text in own + list(TASK_DESCRIPTIONS.values()) + list(TASK_FORMATS.values()):
        for piece in _PLACEHOLDER.split(text):
            words = _WORDS.findall(piece.lower())
            pieces.append(" ".join(words))
            grams.update(tuple(words[i:i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1))
    for text in own:
        # how the prompt names the answers: "original answer", "rewritten answer"
        labels.update(m.group().lower() for m in re.finditer(r"\b(?:original|rewritten|revised) (?:answer|response)\b",
                                                             text, re.I))
        # labels starting a line: "Revised response:", "Kind of request:", "Reasoning:"
        labels.update(m.group(1).lower() + ":" for m in re.finditer(r"^([A-Z][a-z]+(?: [a-z]+){0,3}):", text, re.M))
        # section labels: "[Original answer]", "[Evidence]"
        labels.update(m.group().lower() for m in re.finditer(r"\[[A-Z][a-z]+(?: [a-z]+){0,2}\]", text))
    phrases = tuple(sorted((x for x in labels if " " in x or x.startswith("[")), key=lambda x: (-len(x), x)))
    single = sorted(x for x in labels if x not in phrases)
    line_labels = re.compile(r"^[ \t*#_>]*(" + "|".join(map(re.escape, single)) + ")", re.M) if single else None
    return PromptWording(frozenset(grams), frozenset(g[0] for g in grams), phrases, line_labels, "\n".join(pieces))


def echoed_prompt(text, exclude=""):
    """The piece of our rewrite prompt's wording found in `text` and not in `exclude` (the
    question and original: a dataset about prompts may quote them), as the prompt has it, or
    None: a label ("revised response:", "[original answer]"), a one-word label starting a line
    ("reasoning:"), a short text made only of prompt words, or a run of ECHO_WORDS words of it."""
    w = prompt_wording()
    lower, excluded = text.lower(), exclude.lower()
    for phrase in w.phrases:
        if phrase in lower and phrase not in excluded:
            return phrase
    m = w.line_labels.search(lower) if w.line_labels else None
    if m and m.group(1) not in excluded:
        return m.group(1)  # a one-word label ("Reasoning:") where a line starts
    words = _WORDS.findall(lower)
    if 3 <= len(words) < ECHO_WORDS and " ".join(words) in w.fixed and " ".join(words) not in excluded:
        return " ".join(words)  # a short reply made only of prompt words
    hits = [i for i in range(len(words) - ECHO_WORDS + 1)
            if words[i] in w.firsts and tuple(words[i:i + ECHO_WORDS]) in w.grams]
    if hits:
        excluded_words = " ".join(_WORDS.findall(excluded))
        for i in hits:
            phrase = " ".join(words[i:i + ECHO_WORDS])
            if phrase not in excluded_words:
                return phrase
    return None


# ---------------------------------------------------------------- numbers

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_FINAL_MARK = re.compile(r"(?:final answer|the answer is|answer\s*:|####|\\boxed\{)", re.I)


def _to_number(token):
    token = token.replace(",", "")
    try:
        if "/" in token:
            num, den = token.split("/")
            return float(num) / float(den)
        return float(token)
    except (ValueError, ZeroDivisionError):
        return None


def final_number(text):
    """The final numeric answer of a solution: the first number after the last answer marker
    ('Final answer', 'The answer is', 'Answer:', '####', '\\boxed{'), else the last number."""
    marks = list(_FINAL_MARK.finditer(text))
    if marks:
        m = _NUMBER.search(text, marks[-1].end())
        if m:
            return _to_number(m.group())
    numbers = _NUMBER.findall(text)
    return _to_number(numbers[-1]) if numbers else None


def answer_numbers(text):
    """The numbers where a solution states its answer: after the last answer marker to the end
    of that line, on the closing line, and final_number(text)."""
    out = []
    marks = list(_FINAL_MARK.finditer(text))
    if marks:
        end = text.find("\n", marks[-1].end())
        line = text[marks[-1].end(): end if end >= 0 else len(text)]
        out = [v for v in map(_to_number, _NUMBER.findall(line)) if v is not None]
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines:  # the closing line, where a worked answer states its result
        out += [v for v in map(_to_number, _NUMBER.findall(lines[-1])) if v is not None]
    last = final_number(text)
    return out + ([last] if last is not None else [])


# ---------------------------------------------------------------- loose comparison

LOOP_RATIO = 8.0   # zlib shrinks a looping tail 20x and more; prose 1.7-2.2x, a numbered table about 6x
LOOP_TAIL = 1500   # characters read from the end


def repeats_itself(text):
    """Does `text` end in a loop, the same words over and over, as a model stuck until its token
    limit writes? Its last LOOP_TAIL characters compress more than LOOP_RATIO-fold with zlib (the
    compression-ratio test Whisper uses to spot a decoder that repeats itself)."""
    data = text[-LOOP_TAIL:].encode("utf-8", "surrogatepass")
    return len(data) >= 200 and len(data) > LOOP_RATIO * len(zlib.compress(data))


_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation + "“”‘’–—…"})


def normalized(text):
    """`text` compared loosely: case, punctuation, markdown and whitespace do not count."""
    return " ".join(text.translate(_PUNCTUATION).casefold().split())
