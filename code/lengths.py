"""The length of a text in tokens, with or without a tokenizer.

    length = make_length_fn("path/to/tokenizer_dir")   # or None
    length("some text") -> int

With a path: a local `tokenizer.json` (a file, or a folder holding one) is loaded with the
light `tokenizers` package; anything else (e.g. a hub name) needs `transformers` installed.
Without a path, the tokenizer-free length counts words, numbers and punctuation marks as one
token each and every CJK/kana/hangul character as one token. It tracks BPE counts of
English prose to within roughly ±30 %, good enough to compare candidates or apply ratios.
"""

import os
import re

from realign.errors import UsageError

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECES = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")  # CJK char | word run | mark
_ASCII_PIECES = re.compile(rb"\w+|[^\w\s]")  # the same pieces, for pure-ASCII text


def approx_tokens(text):
    """Tokenizer-free length: words, numbers, punctuation marks and CJK characters."""
    if text.isascii():  # most data: a bytes regex with no CJK classes runs twice as fast
        return len(_ASCII_PIECES.findall(text.encode()))
    return len(_PIECES.findall(text))


def make_length_fn(tokenizer_path=None):
    """A callable str -> int; raises UsageError when the tokenizer cannot be loaded."""
    if not tokenizer_path:
        return approx_tokens
    if not os.path.exists(tokenizer_path) and (os.sep in tokenizer_path or tokenizer_path.startswith(".")):
        raise UsageError(f"--tokenizer_path {tokenizer_path}: not found (a folder holding tokenizer.json, "
                         "or leave the flag out for the tokenizer-free length)")
    file = os.path.join(tokenizer_path, "tokenizer.json") if os.path.isdir(tokenizer_path) else tokenizer_path
    if os.path.isfile(file) and file.endswith(".json"):
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(file)
        except Exception as e:  # the tokenizers library raises plain Exceptions
            raise UsageError(f"--tokenizer_path {tokenizer_path}: cannot load tokenizer ({e})") from None
        return lambda text: len(tok.encode(text, add_special_tokens=False).ids)
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
    return lambda text: len(tok.encode(text, add_special_tokens=False))
