"""The real llama.cpp HTTP server (llama-server's code, from the xllamacpp wheel of `.[local]`),
serving the embedded GGUF model on 127.0.0.1 in a child process: not a fake.

    with LlamaServer(n_ctx=2048) as url:   # http://127.0.0.1:PORT (add /v1 for the OpenAI routes)
        ...

`python -m tests.servers.llama_http --n_ctx 2048` prints the URL on its first line and serves until
its stdin closes. The context is small on purpose: long prompts get llama.cpp's own "exceeds the
available context size" 400, and `n` above 1 its own "Field 'n': Value must be between 1 <= value
<= 1". Slow (a 1.5B model on two CPU threads): tests using it are marked slow.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


class LlamaServer:
    def __init__(self, n_ctx=2048, threads=2, start_timeout=600):
        self.n_ctx, self.threads, self.start_timeout = n_ctx, threads, start_timeout
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.servers.llama_http", "--n_ctx", str(self.n_ctx),
                                      "--threads", str(self.threads)], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()  # the model loads first (seconds; a minute when cold)
        if not line.startswith("http://"):
            self.__exit__()
            raise RuntimeError(f"llama.cpp server did not start: {line!r}")
        return line

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main():
    import argparse

    import xllamacpp

    from realign.llm.gguf_model import default_model_path

    p = argparse.ArgumentParser()
    p.add_argument("--n_ctx", type=int, default=2048)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    params = xllamacpp.CommonParams()
    params.model.path = default_model_path()
    params.n_ctx = args.n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = args.threads
    params.warmup = False
    params.verbosity = -1
    params.no_host = False          # listen: llama-server's HTTP front end
    params.hostnames = ["127.0.0.1"]
    params.port = 0                 # an ephemeral port
    server = xllamacpp.Server(params)
    print(server.listening_address, flush=True)
    sys.stdin.read()
    del server


if __name__ == "__main__":
    main()
