"""The name generator on 2 cores: training time, validation perplexity of the GRU against a
character-bigram baseline on the same split, and how often generated names are new.

    python bench/names.py [--cores 2] [--samples 2000] [--corpora pokemon,first-names]

For each built-in corpus: the product's own training (``lookalike.names.train.fit``, default
hyper-parameters, early stopping on the 10% validation split), timed end to end (split,
bigram baseline, epochs). The baseline is the best add-k character bigram model of a small
grid on the same split. The Pokemon corpus is also trained with 2 torch threads, to show why
training uses one (the matrices are small; a second thread only adds synchronisation).

Novelty: ``--samples`` names drawn at each temperature (the numpy sampler that serves
requests, names up to 20 characters); novel = well-formed and not a name of the corpus;
unique = distinct among the novel ones. Serving: time of one request for 15 names
(rejection and resampling included), median of 50. The load average is printed: on a busy
machine the times are high, not wrong.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import replace

import numpy as np
from machine import cpu_model, load, pin_cores, pkg

TEMPERATURES = (0.5, 1.0, 1.5)
MAX_LENGTH = 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2, help="CPUs to pin to (default 2)")
    parser.add_argument("--samples", type=int, default=2000, help="names per temperature")
    parser.add_argument("--corpora", default="pokemon,first-names", help="comma-separated")
    args = parser.parse_args(argv)

    cpus = pin_cores(args.cores)  # before torch makes its thread pool
    import torch

    from lookalike.names.corpus import load_corpus
    from lookalike.names.generate import generate_names, validate_request, well_formed
    from lookalike.names.store import NamesInfo, NamesModel
    from lookalike.names.train import HyperParameters, fit

    print(f"machine : {cpu_model()}, {os.cpu_count()} CPUs, pinned to {len(cpus)}: {cpus}")
    print(
        f"versions: python {platform.python_version()}, torch {torch.__version__},"
        f" numpy {np.__version__}, faker-pokemon {pkg('faker-pokemon')}, names {pkg('names')}"
    )
    print(f"load average at the start: {load()}")

    warm = load_corpus("pokemon", max_names=200_000, max_chars=64).names[:200]
    for threads in (1, 2):  # torch's first steps are slow: not part of any timing
        fit(warm, HyperParameters(max_epochs=1, threads=threads))

    training_rows: list[str] = []
    novelty_rows: list[str] = []
    serving_rows: list[str] = []
    for corpus_name in [c.strip() for c in args.corpora.split(",") if c.strip()]:
        corpus = load_corpus(corpus_name, max_names=200_000, max_chars=64)
        runs = [("1 (default)", HyperParameters())]
        if corpus_name == "pokemon":
            runs.append(("2", replace(HyperParameters(), threads=2)))
        model = None
        for threads, params in runs:
            started = time.perf_counter()
            result = fit(corpus.names, params)
            seconds = time.perf_counter() - started
            training_rows.append(
                f"| {corpus_name} | {len(corpus)} | {threads} | {result.epochs}"
                f" (best {result.best_epoch}, {result.stopped}) | {seconds:.1f} |"
                f" {result.val_perplexity:.2f} | {result.bigram_perplexity:.2f}"
                f" (k={result.bigram_k}) |"
            )
            print(training_rows[-1], flush=True)
            model = model or result.model
        assert model is not None
        known = frozenset(corpus.names)
        for temperature in TEMPERATURES:
            rng = np.random.default_rng(0)
            drawn = model.sample(rng, args.samples, temperature=temperature, max_length=MAX_LENGTH)
            good = [n for n in drawn if n is not None and well_formed(n)]
            novel = [n for n in good if n not in known]
            novelty_rows.append(
                f"| {corpus_name} | {temperature} | {len(novel) / len(drawn):.3f} |"
                f" {len(set(novel)) / max(len(novel), 1):.3f} |"
                f" {np.mean([len(n) for n in good]):.1f} |"
            )
        info = NamesInfo("bench", "", "", {"name": corpus_name}, model.vocab.chars, {}, {})
        served = NamesModel(info=info, net=model, corpus=known)
        times = []
        for seed in range(50):
            request = validate_request(
                count=15,
                temperature=1.0,
                prefix=None,
                seed=seed,
                max_length=None,
                max_count=15,
                longest=MAX_LENGTH,
            )
            started = time.perf_counter()
            generate_names(served, request, max_tries=500)
            times.append((time.perf_counter() - started) * 1000)
        serving_rows.append(
            f"| {corpus_name} | {statistics.median(times):.1f} | {max(times):.1f} |"
        )

    print("\n### Training (10% held out, early stopping)\n")
    print(
        "| corpus | names | torch threads | epochs | train s | GRU val perplexity |"
        " bigram val perplexity |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(training_rows))
    print(f"\n### Novelty ({args.samples} names per temperature, up to {MAX_LENGTH} characters)\n")
    print("| corpus | temperature | novel | unique among novel | mean length |")
    print("|---|---|---|---|---|")
    print("\n".join(novelty_rows))
    print("\n### Serving (one request for 15 names at temperature 1.0, 50 seeds)\n")
    print("| corpus | median ms | slowest ms |")
    print("|---|---|---|")
    print("\n".join(serving_rows))
    print(f"\nload average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
