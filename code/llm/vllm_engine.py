"""Offline generation with vLLM on the local GPU (`--backend vllm`, model path in `--model`).

`vllm` is imported only when this backend is built, so CPU installs never need it. Chat
requests are rendered through the model's own chat template; raw prompts go in as they are.
vLLM is fastest when handed many prompts at once, so generate() does not call the engine per
request: concurrent requests queue up and a single drain task hands each queue to
`LLM.generate` in one batch (in a worker thread, so the event loop keeps collecting the next
batch meanwhile). The runner's concurrency therefore sets the batch size.

Options (BackendConfig.options): tensor_parallel_size (default: all visible GPUs),
max_model_len, gpu_memory_utilization, dtype — passed to vllm.LLM when given.
"""

import asyncio

from realign.errors import import_extra
from realign.llm.base import Backend, BackendError, Completion

ENGINE_OPTIONS = ("tensor_parallel_size", "max_model_len", "gpu_memory_utilization", "dtype")


def render_chat(tokenizer, messages):
    """The prompt text for chat messages: the tokenizer's chat template, or a plain fallback
    for base models that have none."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    parts = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(parts) + "\n\nAssistant:"


def _gpu_count():
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except ImportError:
        return 1


class VLLMBackend(Backend):
    name = "vllm"
    default_concurrency = 256   # = batch size handed to the engine
    timed_calls = slow_start = throttles = False  # an in-process engine

    def __init__(self, config):
        super().__init__(config)
        vllm = import_extra("vllm", "--backend vllm needs vLLM on a GPU machine: pip install -e '.[vllm]'")
        self._vllm = vllm
        opts = {k: v for k, v in config.options.items() if k in ENGINE_OPTIONS and v is not None}
        opts.setdefault("tensor_parallel_size", _gpu_count())
        self.llm = vllm.LLM(model=config.model, **opts)
        self.tokenizer = self.llm.get_tokenizer()
        self._queue = []      # (prompt, sampling params, future) waiting for the next batch
        self._drainer = None
        self.batches = 0

    def render(self, request):
        if request.messages is not None:
            return render_chat(self.tokenizer, request.messages)
        return request.prompt

    def _params(self, s):
        return self._vllm.SamplingParams(n=s.n, temperature=0.0 if s.temperature is None else s.temperature,
                                         top_p=1.0 if s.top_p is None else s.top_p,
                                         max_tokens=s.max_tokens or 1024)

    async def generate(self, request):
        self.calls += 1  # one engine request (vLLM makes its n samples itself)
        future = asyncio.get_running_loop().create_future()
        self._queue.append((self.render(request), self._params(request.sampling), future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    def _run_batch(self, batch):
        """Per request: its Completions (vLLM's CompletionOutput.finish_reason is "length" at
        max_tokens, as OpenAI's), or a BackendError. vLLM refuses a whole batch for one bad request
        (e.g. a prompt longer than max_model_len), so a failed batch is split in halves until the
        culprits stand alone: they fail, the rest of the batch is still generated."""
        try:
            outputs = self.llm.generate([p for p, _, _ in batch], [sp for _, sp, _ in batch], use_tqdm=False)
            return [[Completion(c.text or "", getattr(c, "finish_reason", None)) for c in out.outputs]
                    for out in outputs]
        except Exception as e:
            if len(batch) == 1:
                return [BackendError(f"vllm: {type(e).__name__}: {' '.join(str(e).split())[:200]}")]
            half = len(batch) // 2
            return self._run_batch(batch[:half]) + self._run_batch(batch[half:])

    async def _drain(self):
        while self._queue:
            await asyncio.sleep(0)  # let every request already on its way join this batch
            batch, self._queue = self._queue, []
            self.batches += 1
            results = await asyncio.to_thread(self._run_batch, batch)
            for (_, _, fut), result in zip(batch, results):
                if fut.done():
                    continue
                if isinstance(result, BackendError):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
