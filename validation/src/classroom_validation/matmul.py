"""A bf16 matmul loop on one GPU for a fixed time: the load of the probe's GPU-balance benchmark.

Run as `python -m classroom_validation.matmul --gpu N --seconds S`; one process per loaded GPU, so the GPUs
do not wait on each other. Needs torch with CUDA (the GPU host's own).
"""

from __future__ import annotations

import argparse
import json
import time


def load(gpu: int, seconds: float, size: int) -> dict[str, float | int]:
    import torch  # noqa: PLC0415 - only the GPU host has it

    device = torch.device("cuda", gpu)
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    products = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(8):
            torch.matmul(a, b)
        torch.cuda.synchronize(device)
        products += 8
    return {"gpu": gpu, "seconds": seconds, "size": size, "products": products,
            "tflops": round(2 * size**3 * products / seconds / 1e12, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--size", type=int, default=8192)
    args = parser.parse_args()
    if not 0 < args.seconds <= 600:
        parser.error("--seconds must be in (0, 600]")
    print(json.dumps(load(args.gpu, args.seconds, args.size)))


if __name__ == "__main__":
    main()
