"""TEST STAND-IN for vLLM's API server (not vLLM): the start-up lines the kit's phase parser reads, a
worker process titled VLLM::Worker_TP1, /health on FAKE_VLLM_PORT, and vLLM's reaction to a dead worker
(the API server exits 0). The compile cache is a marker file in VLLM_CACHE_ROOT: hit when it is there."""

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def log(text: str) -> None:
    print(f"(APIServer pid={os.getpid()}) INFO {time.strftime('%m-%d %H:%M:%S')} [fake_vllm.py:1] {text}", flush=True)


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    port = int(os.environ["FAKE_VLLM_PORT"])
    cache = Path(os.environ["VLLM_CACHE_ROOT"])
    log("non-default args: {}")
    log("Initializing a V1 LLM engine (v0.0.0-fake) with config: fake")
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "VLLM::Worker_TP1"])
    log("Loading model from scratch...")
    log("Model loading took 0.01 GiB and 0.100000 seconds")
    marker = cache / "compiled"
    if marker.exists():
        log("Directly load the compiled graph(s) for compile range (1, 1024) from the cache, took 0.10 s")
    else:
        cache.mkdir(parents=True, exist_ok=True)
        marker.write_text("compiled\n")
        log("Compiling a graph for compile range (1, 1024) takes 0.20 s")
    log("torch.compile took 0.30 s in total")
    log("GPU KV cache size: 1,000 tokens")
    log("Maximum concurrency for 1,024 tokens per request: 0.98x")
    log("Graph capturing finished in 0 secs, took 0.00 GiB")
    log("init engine (profile, create kv cache, warmup model) took 0.50 s")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"(APIServer pid={os.getpid()}) INFO:     Application startup complete.", flush=True)

    def stop(*_: object) -> None:
        worker.terminate()
        worker.wait()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    while worker.poll() is None:
        time.sleep(0.05)
    # vLLM's API server answers /health for a moment after a worker dies, until its engine core reports it;
    # without this the kill test's first health sample raced the stand-in's exit.
    time.sleep(1.0)
    log("EngineCore encountered an issue: a worker died; shutting down")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
