"""`--backend local`: a GGUF instruct model run in-process on the CPU, no server, no key.

The engine is llama.cpp through `xllamacpp` (a prebuilt wheel, `pip install -e '.[local]'`),
imported only when this backend is built. `--model` names a .gguf file; any other value
(including reformat's default model name) selects the bundled default model, joined and
verified on first use by realign.llm.gguf_model.

One request runs at a time per process (the CPU is the bottleneck; parallelism comes from
running shards as separate processes). `n` candidates are generated one after another,
each with its own seed, because the engine answers one choice per call. Generation runs in a
worker thread so the event loop stays responsive; it is bounded by max_tokens, which is
clipped to half the context window.

Options (BackendConfig.options): threads (default 2), n_ctx (default 8192).
"""

import asyncio
import os
import sys
import time

from realign.errors import UsageError, import_extra
from realign.llm.base import Backend, BackendError, completion_from_choice
from realign.llm.gguf_model import INSTALL_HINT, default_model_path

DEFAULT_THREADS = 2
DEFAULT_CTX = 8192


def resolve_model(name, log=None):
    """A .gguf path as given, or the bundled default model for any non-path name."""
    looks_like_path = name and (name.endswith(".gguf") or os.sep in name)
    if not looks_like_path:
        return default_model_path(log=log)
    if not os.path.isfile(name):
        raise UsageError(f"--model {name}: GGUF file not found")
    return name


def _log(message):
    print(f"local: {message}", file=sys.stderr, flush=True)


class LocalGGUFBackend(Backend):
    name = "local"
    default_concurrency = 1
    timed_calls = slow_start = throttles = False  # an in-process engine

    def __init__(self, config):
        super().__init__(config)
        xllamacpp = import_extra("xllamacpp", f"--backend local needs xllamacpp; {INSTALL_HINT}")
        threads = int(config.options.get("threads") or DEFAULT_THREADS)
        if threads < 1:
            raise UsageError(f"--threads must be >= 1, got {threads}")
        self.n_ctx = int(config.options.get("n_ctx") or DEFAULT_CTX)
        self.model_path = resolve_model(config.model, log=_log)

        params = xllamacpp.CommonParams()
        params.model.path = self.model_path
        params.n_ctx = self.n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        params.verbosity = -1  # llama.cpp logs every slot event to stderr otherwise
        started = time.monotonic()
        try:
            self._server = xllamacpp.Server(params)
        except Exception as e:
            raise UsageError(f"{self.model_path}: the local engine could not load it ({e})") from None
        _log(f"{os.path.basename(self.model_path)} loaded in {time.monotonic() - started:.1f} s, {threads} thread(s)")
        self._lock = asyncio.Lock()
        self.tokens_in = 0        # prompt tokens evaluated, all calls
        self.prompt_seconds = 0.0
        self.tokens_out = 0       # generated tokens, all calls
        self.gen_seconds = 0.0    # time spent generating them (llama.cpp's own timings)
        self.calls = 0

    def _body(self, request, seed):
        s = request.sampling
        body = {"max_tokens": min(s.max_tokens or 1024, self.n_ctx // 2),
                "temperature": s.temperature, "top_p": 1.0 if s.top_p is None else s.top_p, "seed": seed}
        if request.response_format is not None:  # llama.cpp turns a JSON schema into a grammar
            body["response_format"] = request.response_format
        if request.messages is not None:
            return "chat", {**body, "messages": request.messages}
        return "text", {**body, "prompt": request.prompt}

    def _complete(self, kind, body):
        """One blocking engine call -> Completion; BackendError on an engine error. The engine answers
        in the OpenAI shape, with finish_reason "length" when it stops at max_tokens."""
        self.calls += 1
        try:
            if kind == "chat":
                reply = self._server.handle_chat_completions(body)
            else:
                reply = self._server.handle_completions(body)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"local engine: {e}") from None
        if not isinstance(reply, dict) or "error" in reply:
            error = reply.get("error", {}) if isinstance(reply, dict) else {}
            raise BackendError(f"local engine: {error.get('message', reply)}", status=error.get("code"))
        timings = reply.get("timings") or {}
        self.tokens_in += int(timings.get("prompt_n") or 0)
        self.prompt_seconds += float(timings.get("prompt_ms") or 0) / 1000
        self.tokens_out += int(timings.get("predicted_n") or 0)
        self.gen_seconds += float(timings.get("predicted_ms") or 0) / 1000
        try:
            return completion_from_choice(reply["choices"][0], chat=kind == "chat")
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise BackendError(f"local engine: malformed reply ({type(e).__name__})") from None

    async def generate(self, request):
        completions = []
        async with self._lock:
            for k in range(request.sampling.n):
                kind, body = self._body(request, seed=1234 + k)
                completions.append(await asyncio.to_thread(self._complete, kind, body))
        return completions

    @property
    def tokens_per_second(self):
        return self.tokens_out / self.gen_seconds if self.gen_seconds else 0.0

    async def aclose(self):
        self._server = None
