"""Sample text from a trained language model (GPT-2 or xLSTM) of `xlstm-seq lm train`.

    python examples/lm_generate.py runs/lm/train-tiny-xlstm "The history of the river" --tokens 40

The xLSTM reads the prompt in one parallel pass and then generates with constant memory per token
(``model.step`` on the carried state); GPT-2 reruns its window for every token.
"""

from __future__ import annotations

import argparse
import time

import torch

from xlstm_seq.lm.eval_suite import load_trained_model
from xlstm_seq.lm.tokenizer import gpt2_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="checkpoint folder or training out_dir")
    parser.add_argument("prompt", help="text to continue")
    parser.add_argument("--tokens", type=int, default=40, help="tokens to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 for greedy decoding")
    parser.add_argument("--top-k", type=int, default=50, help="sample among the k most likely tokens")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    args = parser.parse_args()

    model, meta = load_trained_model(args.checkpoint)
    enc = gpt2_tokenizer()
    prompt = torch.tensor([enc.encode_ordinary(args.prompt)])  # (1, T)
    start = time.perf_counter()
    out = model.generate(
        prompt, args.tokens, temperature=args.temperature, top_k=args.top_k,
        generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"{meta['config']['model']['kind']} after {meta['step']} steps ({args.tokens / seconds:.1f} tokens/s):")
    print(enc.decode(out[0].tolist()))


if __name__ == "__main__":
    main()
