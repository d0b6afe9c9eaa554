"""Coverage-guided fuzzing (atheris, libFuzzer underneath) of the file readers.

    pip install ".[fuzz]"
    python fuzz/fuzz_readers.py idx -runs=100000       # also: idx_gz, csv, model, image

Each target writes the fuzzer's bytes to a file and calls the reader through the contract in
tests/fuzz_targets.py: well-formed data back, or the reader's documented error. Anything else
(another exception, an assertion about the result, a crash) stops the run and saves the input as
crash-*. The corpus starts from valid files of the kind; extra libFuzzer flags pass through.
"""

import os
import sys
import tempfile

import atheris

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import fuzz_targets  # noqa: E402

# Instrument every loaded Python function for coverage (an import hook would miss the package
# when it is installed in editable mode, whose finder bypasses atheris's).
atheris.instrument_all()

TARGETS = {
    "idx": lambda data, d: fuzz_targets.idx_target(data, d, gz=False),
    "idx_gz": lambda data, d: fuzz_targets.idx_target(data, d, gz=True),
    "csv": fuzz_targets.csv_target,
    "model": fuzz_targets.model_target,
    "image": fuzz_targets.image_target,
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags, e.g. -runs=100000]")
    name, flags = sys.argv[1], sys.argv[2:]
    target = TARGETS[name]
    workdir = tempfile.mkdtemp(prefix=f"mnistfast-fuzz-{name}-")
    corpus = os.path.join(workdir, "corpus")
    os.mkdir(corpus)
    for i, seed in enumerate(fuzz_targets.seed_inputs()[name]):
        with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
            f.write(seed)
    scratch = os.path.join(workdir, "files")
    os.mkdir(scratch)
    atheris.Setup([sys.argv[0], *flags, corpus], lambda data: target(data, scratch))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
