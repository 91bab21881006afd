"""The length of a text in tokens, with or without a tokenizer.

    length = make_length_fn("path/to/tokenizer_dir")   # or None
    length("some text") -> int

With a path: a local `tokenizer.json` (a file, or a folder holding one) is loaded with the
light `tokenizers` package. A Hugging Face Hub name that is no local path (the spec's
`meta-llama/Llama-2-7b-chat-hf`) has its `tokenizer.json` fetched by `huggingface_hub` (which
`tokenizers` depends on): from the local HF cache when it is there, else from the Hub, honouring
HF_TOKEN (gated models), HF_HUB_OFFLINE and HF_ENDPOINT. Anything else needs `transformers`.
Without a path, the tokenizer-free length counts words, numbers and punctuation marks as one
token each and every CJK/kana/hangul character as one token. It tracks BPE counts of
English prose to within roughly ±30 %, good enough to compare candidates or apply ratios.
Either way a long text is counted in pieces of about 1 MB cut at whitespace, so a 50 MB
record costs megabytes, not the gigabyte a list of all its tokens would.
"""

import os
import re

from realign.errors import UsageError

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECES = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")  # CJK char | word run | mark
_ASCII_PIECES = re.compile(rb"\w+|[^\w\s]")  # the same pieces, for pure-ASCII text
_SPACE = re.compile(r"\s")
PIECE_CHARS = 1 << 20


def in_pieces(count):
    """`count` applied to a long text piece by piece (cut at whitespace), the counts summed."""

    def counted(text):
        if len(text) <= PIECE_CHARS:
            return count(text)
        total, start = 0, 0
        while start < len(text):
            space = _SPACE.search(text, start + PIECE_CHARS)
            end = space.start() + 1 if space else len(text)
            total += count(text[start:end])
            start = end
        return total

    return counted


@in_pieces
def approx_tokens(text):
    """Tokenizer-free length: words, numbers, punctuation marks and CJK characters."""
    if text.isascii():  # most data: a bytes regex with no CJK classes runs twice as fast
        return len(_ASCII_PIECES.findall(text.encode()))
    return len(_PIECES.findall(text))


# "owner/name" on the Hugging Face Hub: one slash, no leading dot or slash (those are local paths).
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _hub_length_fn(name):
    """The length function of the `tokenizer.json` of Hub model `name` (cache first, then the Hub);
    UsageError naming the model and the Hub's reason when it cannot be had."""
    import logging

    from huggingface_hub import hf_hub_download

    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its "Retrying in 1s" lines: the outcome is said in one line below
    try:
        file = hf_hub_download(name, "tokenizer.json")
    except Exception as e:  # offline and not cached, gated, unknown repo, no tokenizer.json, network
        why = " ".join(str(e).split())
        why = why if len(why) <= 200 else why[:200].rsplit(" ", 1)[0] + " ..."
        raise UsageError(f"--tokenizer_path {name}: not a local path, and its tokenizer.json could not be had "
                         f"from the Hugging Face Hub ({type(e).__name__}: {why}); for a gated model set HF_TOKEN, "
                         "or point the flag at a folder holding tokenizer.json") from None
    finally:
        hub_log.setLevel(level)
    return _tokenizer_json_length(file, name)


def _tokenizer_json_length(file, flag_value):
    """The length function of a tokenizer.json file; UsageError when it is not one."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(file)
    except Exception as e:  # the tokenizers library raises plain Exceptions
        raise UsageError(f"--tokenizer_path {flag_value}: cannot load tokenizer ({e})") from None
    return in_pieces(lambda text: len(tok.encode(text, add_special_tokens=False).ids))


def make_length_fn(tokenizer_path=None):
    """A callable str -> int; raises UsageError when the tokenizer cannot be loaded."""
    if not tokenizer_path:
        return approx_tokens
    if not os.path.exists(tokenizer_path) and _HUB_NAME.fullmatch(tokenizer_path):
        return _hub_length_fn(tokenizer_path)
    if not os.path.exists(tokenizer_path) and (os.sep in tokenizer_path or tokenizer_path.startswith(".")):
        raise UsageError(f"--tokenizer_path {tokenizer_path}: not found (a folder holding tokenizer.json, "
                         "or leave the flag out for the tokenizer-free length)")
    file = os.path.join(tokenizer_path, "tokenizer.json") if os.path.isdir(tokenizer_path) else tokenizer_path
    if os.path.isfile(file) and file.endswith(".json"):
        return _tokenizer_json_length(file, tokenizer_path)
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise UsageError(
            f"--tokenizer_path {tokenizer_path}: no tokenizer.json there; point it at a folder holding "
            "tokenizer.json, install transformers for other tokenizers, or leave it out"
        ) from None
    try:
        tok = AutoTokenizer.from_pretrained(tokenizer_path)
    except Exception as e:
        raise UsageError(f"--tokenizer_path {tokenizer_path}: cannot load tokenizer ({type(e).__name__})") from None
    return in_pieces(lambda text: len(tok.encode(text, add_special_tokens=False)))
