"""Every check we make on the text of an answer, in one place.

reformat's reply reader (realign.prompts.read_reply), the filter rules
(rewrite_data_selection.py) and the fact finder (realign.facts) import these, so a refusal, an
echo of our prompt, a fence or a number reads the same in every step:

    refusal_phrase(text)              "I'm sorry, but I" / "As an AI" / None
    echoed_prompt(text, exclude="")     the piece of our rewrite prompt found in text, or None
    template_token(text)              a chat-template token ("<|im_end|>") in text, or None
    strip_end_tokens(text, keep="")   text without the end-of-turn tokens trailing it
    whole_fence(text)                 (tag, inside) of a text wrapped whole in one ``` fence, or None
    unwrap_prose_fence(text)          the inside of such a fence when it holds prose, not code
    has_code / code_blocks / code_from / mask_code
    code_layout_lost(original, rewrite)  an indented code line of the original the rewrite un-indented
    question_line(text, question)     a line of text that copies the question, or None
    numbers(text)                     every number stated: digits of any script, 3k, 50%, twelve, 12小时, 十二
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

# Special tokens of chat templates that a server may leave in a reply: ChatML, Llama 3 and 4,
# Gemma, Phi, Mistral, DeepSeek, Cohere Command-R, gpt-oss, GPT-2/Qwen end of text, </s>, and any
# other "<|word|>" token (every family since ChatML spells its special tokens that way).
_TEMPLATE_TOKEN = re.compile(
    r"<\|[A-Za-z][\w-]{0,40}\|>|<(?:end_of_turn|start_of_turn|eos|bos)>|</s>|\[/?INST\]"
    r"|<｜(?:end▁of▁sentence|begin▁of▁sentence|Assistant|User)｜>")


def template_token(text):
    """The first chat-template special token in `text` ("<|im_end|>", "<end_of_turn>", "</s>"), or None."""
    m = _TEMPLATE_TOKEN.search(text) if "<" in text or "[" in text else None
    return m.group() if m else None


# the tokens that end a turn or a text: trailing a reply, they are the template's, not the answer's
# (ChatML <|im_end|>, <|endoftext|>, Llama 3 <|eot_id|>/<|eom_id|>, Llama 4 <|eot|>, Phi <|end|>,
# gpt-oss <|return|>, Gemma <end_of_turn> and <eos>, Cohere <|END_OF_TURN_TOKEN|>, </s>, DeepSeek's)
_END_TOKEN = re.compile(r"(<\|(?:im_end|endoftext|eot_id|eot|end_of_text|end|eom_id|eom|return|end_of_turn"
                        r"|END_OF_TURN_TOKEN)\|>|<end_of_turn>|<eos>|</s>|<｜end▁of▁sentence｜>)\s*\Z")


def strip_end_tokens(text, keep=""):
    """`text` without the end-of-turn tokens trailing it ("answer.<|im_end|>\n<|endoftext|>", as
    a server that does not strip them sends it), save a token that `keep` (the original) holds
    itself (an HTML answer's </s>)."""
    while "<" in text[-32:]:
        tail = text[-32:]
        m = _END_TOKEN.search(tail)
        if not m or m.group(1) in keep:
            break
        text = text[: len(text) - len(tail) + m.start()].rstrip()
    return text


# ---------------------------------------------------------------- our own prompt echoed back

ECHO_WORDS = 7  # a run of this many words of the prompt's fixed text is an echo (a heading taken
# from a layout line is shorter)
_PLACEHOLDER = re.compile(r"\{[a-z_]*\}")
# what the model's own "Reasoning:" part talks about (our prompt asks it to name what the
# original lacks compared with the layout)
_REWRITE_TALK = ("original", "layout", "rewrit", "revis", "format", "structur", "lack", "heading", "bullet",
                 "table", "section")
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
    """Everything we put in a rewrite prompt: the texts it is built from
    (prompts.REWRITE_PROMPT_PARTS: system prompt, template, section labels, added rules) and the
    task descriptions and layouts of constant.py, with the {placeholders} taken out."""
    from realign import prompts  # the rewrite prompt lives there; imported late: prompts imports us

    own = list(prompts.REWRITE_PROMPT_PARTS)
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
    ("reasoning:") with text after it on its line or heading a paragraph that talks about the
    original, the layout or the rewrite, a short text made only of prompt words, or a run of
    ECHO_WORDS words of it."""
    w = prompt_wording()
    lower, excluded = text.lower(), exclude.lower()
    for phrase in w.phrases:
        if phrase in lower and phrase not in excluded:
            return phrase
    for m in w.line_labels.finditer(lower) if w.line_labels else ():
        # a one-word label ("Reasoning:") where a line starts, with its text on that line (as our
        # reply format has it) or followed by talk of the rewriting itself; "Reasoning:" alone
        # on a line over the steps of a worked solution is the answer's own heading
        paragraph = lower[m.end(): m.end() + 400].split("\n\n", 1)[0]
        inline = paragraph.split("\n", 1)[0].strip(" \t*_")
        if m.group(1) not in excluded and (inline or any(word in paragraph for word in _REWRITE_TALK)):
            return m.group(1)
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

# Scripts written without spaces between words: a number glued to them ("浸泡12小时") is a number.
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
CURRENCY = "$€£¥₹"
# \d is any script's digits (1, ١, １); a number starts after a space, mark or CJK character, never
# inside a word ("H2O", "mp3") or after . , / (the tail of 1.5.3 or 12/25/2023)
_NUMBER = re.compile(rf"""
    (?=[\d{CURRENCY}])(?:(?<![\w.,/])|(?<=[{CJK_CHARS}]))
    (?P<cur>[{CURRENCY}]\s?)?
    (?P<num>\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?)(?:/(?P<den>\d+))?(?![.,]?\d)
    (?P<suf>\s?(?:%|％|percent\b|per\s?cent\b|thousand\b|million\b|billion\b|trillion\b|[千万萬亿億])
           |(?:k|K|M|bn|B)\b)?
    """, re.X)
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9, "billion": 1e9,
          "trillion": 1e12, "千": 1e3, "万": 1e4, "萬": 1e4, "亿": 1e8, "億": 1e8}
_PERCENT = ("%", "％", "percent", "per cent", "percent")

# Number words: cardinals (and "dozen", "half", "quarter") state a quantity; ordinals and
# "once", "twice", "double", "triple" are kept apart (ORDINAL_WORDS): they number a list or a
# step as often as they state anything.
CARDINAL_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
CARDINAL_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
                       "ninety": 90, "hundred": 100, "thousand": 1000, "million": 1e6, "billion": 1e9,
                       "dozen": 12, "half": 0.5, "quarter": 0.25})
ORDINAL_WORDS = {"twice": 2, "double": 2, "triple": 3, "once": 1, "first": 1, "second": 2, "third": 3,
                 "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}
NUMBER_WORDS = {**CARDINAL_WORDS, **ORDINAL_WORDS}


def _trie(words):
    """A regex matching any of `words`, as a trie ("t(?:en|h(?:ird|ree))"): re tries the
    alternatives of a flat "ten|third|three" one by one at every position of a text."""
    if not words:
        return ""
    heads = {}
    for w in words:
        heads.setdefault(w[:1], []).append(w[1:])
    parts = []
    for head, tails in sorted(heads.items()):
        if head == "":
            continue
        rest = _trie([t for t in tails if t])
        optional = "" in tails
        parts.append(re.escape(head) + (f"(?:{rest})" + ("?" if optional else "") if rest else ""))
    return parts[0] if len(parts) == 1 and "" not in heads else "(?:" + "|".join(parts) + ")"


_ALTERNATION = _trie(sorted(NUMBER_WORDS))
# one number word, or two joined by a space or hyphen ("twenty-five", "two million")
_NUMBER_WORD = re.compile(rf"\b({_ALTERNATION})(?:[\s-]+({_ALTERNATION}))?\b", re.I)


@dataclass(frozen=True)
class Number:
    """One number a text states, as `numbers` finds it.

    start, end: where it stands; at: where its digits or word start (after a currency sign); surface: the text there ("$1,200", "3k", "twelve", "3/4");
    written: how its digits are written ("1,200"; the words in lower case), for a same-writing
    match; value: what it means (1200, 3000, 12, 0.75; a percent as its number: 50% -> 50);
    values: every value it may stand for (also 0.5 for 50%, 3 for 3k, 3 for 3/4);
    word: written in words; ordinal: an ordinal or once/twice/double/triple; plain: digits with
    no currency, no suffix, no fraction."""
    start: int
    end: int
    at: int
    surface: str
    written: str
    value: float
    values: tuple
    word: bool = False
    ordinal: bool = False
    plain: bool = False


def _digits_number(m):
    num, den, suffix = m.group("num"), m.group("den"), (m.group("suf") or "").strip().lower()
    try:
        bare = float(num.replace(",", ""))
        value = bare / float(den) if den else bare
    except (ValueError, ZeroDivisionError):
        return None
    values = [value] if not den else [value, bare]
    if suffix in _PERCENT:
        values.append(value / 100)
    elif suffix:
        value = value * _SCALE[suffix]
        values.insert(0, value)
    return Number(m.start(), m.end(), m.start("num"), m.group().strip(), num + ("/" + den if den else ""), value,
                  tuple(values), plain=not (m.group("cur") or suffix or den))


def _word_number(m):
    a = NUMBER_WORDS[m.group(1).lower()]
    if not m.group(2):
        return Number(m.start(), m.end(), m.start(), m.group(), m.group().lower(), a, (a,), word=True,
                      ordinal=m.group(1).lower() in ORDINAL_WORDS)
    b = NUMBER_WORDS[m.group(2).lower()]
    value = a * b if b >= 100 else a + b
    return Number(m.start(), m.end(), m.start(), m.group(), " ".join(m.group().lower().replace("-", " ").split()), value,
                  (value, a, b), word=True, ordinal=m.group(2).lower() in ORDINAL_WORDS)


# Chinese numerals (十二, 两, 一百二十, 三万五千, 二〇二四): a run of two or more with a place unit
# (十 百 千 万 亿), or any run followed by a counter or unit (三天, 五个, 两小时). One digit alone
# stays a word ("统一", "一起", "三心二意"), and so do the idioms below ("十分" is "very").
_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5, "六": 6,
             "七": 7, "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_BIG = {"万": 1e4, "萬": 1e4, "亿": 1e8, "億": 1e8}
_CN_RUN = "".join([*_CN_DIGIT, *_CN_UNIT, *_CN_BIG])
_CN_COUNTER = ("个|個|位|名|人|岁|歲|年|月|日|天|周|週|星期|小时|小時|分钟|分鐘|秒|次|遍|倍|元|块|塊|角|米|公里|千米|"
               "厘米|毫米|公斤|千克|克|斤|吨|噸|升|毫升|度|步|本|只|隻|条|條|张|張|件|种|種|份|页|頁|章|节|節|层|層|"
               "家|辆|輛|台|臺|杯|碗|瓶|颗|顆|片|行|段|句|点|點|分|号|號|季|代|届|屆|场|場|项|項|座|所|株|棵|头|頭")
_CN_NUMBER = re.compile(rf"(?<![{_CN_RUN}\d])(?P<run>[{_CN_RUN}]+)(?P<counter>{_CN_COUNTER})?")
_CN_IDIOM = re.compile(r"万一|一一|十分(?!钟|鐘)|千万(?=[不别別要记記])|一(?=[些起样樣直定般切旦边邊同共])|七八|三三两两")


_CN_CHARS = re.compile(f"[{_CN_RUN}]")


def _cn_value(run):
    """The value of a run of Chinese numerals: 十二 12, 一百零五 105, 三万五千 35000, 二〇二四 2024."""
    if not any(ch in _CN_UNIT or ch in _CN_BIG for ch in run):
        return float("".join(str(_CN_DIGIT[ch]) for ch in run))   # digit by digit: a year, a code
    total, section, digit = 0.0, 0.0, 0
    for ch in run:
        if ch in _CN_DIGIT:
            digit = _CN_DIGIT[ch]
        elif ch in _CN_UNIT:
            section += (digit or 1) * _CN_UNIT[ch]
            digit = 0
        else:
            big = _CN_BIG[ch]
            if total and total < big:   # 三千万: the earlier sections are scaled too
                total = (total + section + digit) * big
            else:
                total += (section + digit or 1) * big
            section, digit = 0.0, 0
    return total + section + digit


def _cn_numbers(text):
    """The Chinese-numeral Numbers of `text` (see _CN_NUMBER); word=True, ordinal after 第."""
    out = []
    for m in _CN_NUMBER.finditer(text):
        run = m.group("run")
        if _CN_IDIOM.match(text, m.start()) or not (
                m.group("counter") or len(run) >= 2 and any(ch in _CN_UNIT or ch in _CN_BIG for ch in run)):
            continue
        value = _cn_value(run)
        out.append(Number(m.start(), m.end("run"), m.start(), run, run, value, (value,), word=True,
                          ordinal=text[m.start() - 1:m.start()] == "第"))
    return out


def numbers(text, words=True):
    """Every number `text` states, in order: digits in any script, with thousands commas,
    decimals, a fraction, a currency sign, a percent or a scale (1,200; $5; 3/4; 50%; 3k;
    2 million; 3万), also glued to CJK text (12小时); and, with words=True, number words (twelve,
    twenty-five, two million, half) and Chinese numerals (十二小时, 三万五千). One pass over the text
    for each kind."""
    found = [n for n in map(_digits_number, _NUMBER.finditer(text)) if n is not None]
    if words:
        # "million" of "2 million" is part of that number, and so is 万 of 3万
        word_numbers = [_word_number(m) for m in _outside(found, _NUMBER_WORD.finditer(text), lambda m: m.span())]
        if _CN_CHARS.search(text):
            word_numbers += _outside(found, _cn_numbers(text), lambda n: (n.start, n.end))
        if word_numbers:
            found = sorted(found + word_numbers, key=lambda n: n.start)
    return found


def _outside(spans, items, bounds):
    """The items that overlap none of `spans` (Numbers in text order, not overlapping each other);
    items come in text order too, bounds(item) -> (start, end). One pass over both: linear."""
    spans = iter(spans)
    span = next(spans, None)
    out = []
    for item in items:
        start, end = bounds(item)
        while span is not None and span.end <= start:
            span = next(spans, None)
        if span is None or end <= span.start:
            out.append(item)
    return out


_FINAL_MARK = re.compile(r"(?:final answer|the answer is|answer\s*:|####|\\boxed\{)", re.I)
_MINUS = "-−"


def _answer_values(text, start=0, end=None):
    """The values of the numbers of text[start:end] that can be an answer (not ordinals), a
    minus sign read where one stands before the number and after no word."""
    out = []
    for n in numbers(text[start:end] if start or end is not None else text):
        if n.ordinal:
            continue
        at = start + n.start
        negative = (not n.word and at > 0 and text[at - 1] in _MINUS
                    and (at < 2 or not text[at - 2].isalnum()))
        out.append(-n.value if negative else n.value)
    return out


def final_number(text):
    """The final numeric answer of a solution: the first number after the last answer marker
    ('Final answer', 'The answer is', 'Answer:', '####', '\\boxed{'), else the last number.
    Numbers as `numbers` reads them: 3k is 3000, 3/4 is 0.75, twelve is 12; None when there is none."""
    marks = list(_FINAL_MARK.finditer(text))
    if marks:
        after = _answer_values(text, marks[-1].end())
        if after:
            return after[0]
    values = _answer_values(text)
    return values[-1] if values else None


def answer_marked(text):
    """Does `text` mark its answer ('Final answer', 'The answer is', 'Answer:', '####', '\\boxed{')?"""
    return bool(_FINAL_MARK.search(text))


def same_value(a, b):
    """Are two numbers the same answer (equal to a millionth of the larger, at least 1e-6)?"""
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def _closing_line(text):
    """(start, end) of the last line of `text` that holds anything."""
    end = len(text.rstrip())
    return text.rfind("\n", 0, end) + 1, end


def answer_numbers(text):
    """The numbers where a solution states its answer: after the last answer marker to the end
    of that line, on the closing line, and final_number(text)."""
    out = []
    marks = list(_FINAL_MARK.finditer(text))
    if marks:
        end = text.find("\n", marks[-1].end())
        out = _answer_values(text, marks[-1].end(), end if end >= 0 else None)
    start, end = _closing_line(text)  # the closing line, where a worked answer states its result
    if start < end:
        out += _answer_values(text, start, end)
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


_LABEL = re.compile(r"^\W*(?:question|q|request|prompt)\s*:", re.I)


def question_line(text, question, original=""):
    """The line of `text` that repeats the single-line `question` (five words or more) word for
    word, markdown and a "Question:" label aside, where `original` has no such line; else None.
    An answer that opens by copying the request teaches a model to echo its prompt."""
    asked = normalized(question)
    if "\n" in question.strip() or len(asked.split()) < 5:
        return None
    def repeats(t):
        return next((line for line in t.splitlines() if normalized(_LABEL.sub("", line)) == asked), None)
    line = repeats(text)
    return line.strip() if line and not repeats(original) else None


def code_layout_lost(original, rewrite):
    """The first indented line of the original's fenced code that the rewrite no longer has as a
    line at least as indented ("    return a + b" became "- return a + b": the block is no longer
    code), when half or more of those lines are so lost; else None. Tabs count as 4 spaces;
    comment lines are left out (a rewrite may drop or reword them)."""
    lines = [ln.rstrip().expandtabs(4) for block in code_blocks(original) for ln in block.splitlines()]
    indented = [ln for ln in lines if ln[:1] == " " and ln.strip() and not ln.strip().startswith(("#", "//"))]
    if not indented:
        return None
    have = {}
    for ln in rewrite.splitlines():
        ln = ln.rstrip().expandtabs(4)
        have.setdefault(ln.strip(), []).append(len(ln) - len(ln.lstrip()))
    lost = [ln for ln in indented if not any(d >= len(ln) - len(ln.lstrip()) for d in have.get(ln.strip(), ()))]
    return lost[0].strip() if lost and 2 * len(lost) >= len(indented) else None
