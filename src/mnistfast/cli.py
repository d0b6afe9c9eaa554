"""Command line: ``mnistfast train | eval | predict | plot | export | search | bench`` (also ``python -m
mnistfast ...``). Each command parses its flags and calls the API."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from . import __version__
from .outputs import RUN_MARKER, RunDirectory, check_output_dir, check_output_file

DATA_HELP = ("a directory of IDX files (MNIST's names, EMNIST's or others ending the same), a Kaggle train.csv, a "
             "Keras mnist.npz, or a folder of PNG/JPEG images with one subfolder per class (default: the bundled "
             "MNIST)")

# Training defaults come from each preset's recipe (mnistfast.presets.RECIPES); a flag left at
# None keeps the recipe's value.
MODELS = ("mlp", "cnn", "cnn-improved", "cnn-deep", "cnn-fast")


def _layers(text: str) -> list[int]:
    try:
        layers = [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers must be integers like 784,128,64,10, got {text!r}") from None
    if len(layers) < 2 or min(layers) < 1:
        raise argparse.ArgumentTypeError(f"--layers needs at least two positive sizes, got {text!r}")
    return layers


def _positive(kind):
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


class _Help(argparse.HelpFormatter):
    """Each flag's default after its help, unless the help already says it or there is none to
    show (a flag off by default, a value the recipe decides)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnistfast", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mnistfast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on MNIST and save it with its history",
                       formatter_class=_Help,
                       description="Train a preset with its recipe (mlp: SGD lr 0.5 cosine, 5 epochs; cnn: Adam "
                                   "lr 1e-3 cosine, 6 epochs; batch 128). Flags override the recipe.")
    t.add_argument("--model", choices=MODELS, default="mlp",
                   help="mlp: the seed MLP; cnn: the seed's basic CNN; cnn-improved: its BN + augmentation CNN; "
                        "cnn-deep: that CNN with two convs in each of its first two blocks; "
                        "cnn-fast: the tiny CNN of the fastest one-epoch recipe")
    t.add_argument("--backend", default="cpp", choices=["cpp", "numpy", "cuda"],
                   help="kernel backend (cuda: an NVIDIA GPU through numba-cuda, pip install \".[cuda]\")")
    t.add_argument("--layers", type=_layers, default=None, help="MLP layer sizes, comma-separated (default 784,128,64,10)")
    t.add_argument("--epochs", type=int, default=None, help="passes over the training set (default: the recipe's)")
    t.add_argument("--batch-size", type=_positive(int), default=None, help="samples per step (default: the recipe's)")
    t.add_argument("--optimizer", choices=["sgd", "adam"], default=None, help="the update rule (default: the recipe's)")
    t.add_argument("--lr", type=_positive(float), default=None, help="(peak) learning rate (default: the recipe's)")
    t.add_argument("--lr-schedule", choices=["constant", "cosine", "step", "exponential", "onecycle"], default=None,
                   help="how the learning rate moves over the run (default: the recipe's)")
    t.add_argument("--momentum", type=float, default=None,
                   help="SGD's momentum (default: the recipe's, 0); only with the sgd optimizer")
    t.add_argument("--weight-decay", type=float, default=None, help="L2 penalty (default: the recipe's, 0)")
    t.add_argument("--clipnorm", type=_positive(float), default=None, help="clip the gradient's global L2 norm")
    t.add_argument("--clipvalue", type=_positive(float), default=None, help="clip each gradient component")
    t.add_argument("--dropout", type=float, default=0.0, help="MLP: dropout after each hidden layer")
    t.add_argument("--batchnorm", action="store_true", help="MLP: batch norm after each hidden Dense")
    t.add_argument("--activation", choices=["relu", "leaky_relu", "sigmoid", "tanh"], default="relu",
                   help="MLP: the hidden activation")
    t.add_argument("--no-augment", action="store_true", help="train without the recipe's data augmentation")
    t.add_argument("--ensemble", type=_positive(int), default=1,
                   help="train N members with seeds seed..seed+N-1 and save their average (mf.Ensemble)")
    t.add_argument("--seed", type=int, default=0,
                   help="initialises the weights, the shuffling and augmentation, and a CSV's held-out split")
    t.add_argument("--data", default=None, metavar="PATH", help=DATA_HELP)
    t.add_argument("--resize", default=None, metavar="HxW",
                   help="bring every image to this size, bilinear (28 or 32x24, height x width); without it, "
                        "images of mixed sizes are refused")
    t.add_argument("--channels", type=int, choices=[1, 3], default=None,
                   help="1: grayscale, 3: RGB (default: image files become grayscale, arrays keep theirs)")
    t.add_argument("--normalize", choices=["scale", "standardize", "none"], default="scale",
                   help="how the model turns raw pixels into inputs (it records this): scale to [0, 1], "
                        "standardize per pixel with the training set's statistics, or none (0..255)")
    t.add_argument("--validation-split", type=float, default=None,
                   help="fraction of the training set held out and evaluated after each epoch (default: the "
                        "recipe's: 0.1 for cnn-improved and cnn-deep, else 0)")
    t.add_argument("--out", default=None, metavar="DIR", help="where history.json and model.npz go (default runs/MODEL)")
    t.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1,
                   help="0 silent, 1 a progress bar per epoch, 2 one line per epoch")
    t.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32",
                   help="GEMM operands in fp32 or bf16 (float32 weights and sums either way); auto: bf16 where "
                        "the CPU has bf16 dot-product instructions (default fp32)")
    t.add_argument("--threads", type=_positive(int), default=None,
                   help="threads for the C++ kernels (default: MNISTFAST_NUM_THREADS, else the CPUs this "
                        "process may use)")
    t.add_argument("--plots", action="store_true", help="also draw the run's figures (needs mnistfast[plot])")
    t.add_argument("--config", default=None, metavar="JSON",
                   help="take the settings in this file (a search's best.json, or an object of flag names and "
                        "values) before the flags given here, which override them")
    t.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="go on with an interrupted run (its checkpoint beside RUN_DIR) with its own settings")
    t.set_defaults(func=cmd_train)
    parser.train_parser = t  # main() reads a --config file's flags through it

    pl = sub.add_parser("plot", help="draw a run's learning curves, confusion matrix, misclassified digits and "
                                     "first-layer weights as PNGs", formatter_class=_Help)
    pl.add_argument("run_dir", help="a directory written by mnistfast train")
    pl.add_argument("--data", default=None, metavar="PATH",
                    help="labelled test images, as eval takes them (default: the data the run was trained on)")
    pl.add_argument("--out", default=None, metavar="DIR", help="where the PNGs go (default: the run directory)")
    pl.set_defaults(func=cmd_plot)

    e = sub.add_parser("eval", help="evaluate a saved model: loss, accuracy, per-class precision/recall/F1, "
                                    "confusion matrix", formatter_class=_Help)
    e.add_argument("model", help="a model file written by train (model.npz)")
    e.add_argument("--data", default=None, metavar="PATH",
                   help="labelled images in any form train reads: the test split of the data the model was trained "
                        "on, or all of other data without a test split (a CSV, an image folder); an image inside a "
                        "class folder is one labelled image (default: the data the model was trained on, as it "
                        "records)")
    e.add_argument("--resize", action="store_true",
                   help="bring images of another size to the model's (on by default for a model trained with "
                        "--resize)")
    e.add_argument("--seed", type=int, default=None,
                   help="the seed of the CSV's held-out split, as in train (default: the one the model records)")
    e.add_argument("--backend", default="cpp", choices=["cpp", "numpy", "cuda"], help="kernel backend")
    e.add_argument("--out", default=None, metavar="JSON", help="where the report goes (default: eval.json beside the model)")
    e.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="predict labels (a Kaggle submission) or probabilities for images",
                       formatter_class=_Help)
    p.add_argument("model", help="a model file written by train (model.npz)")
    p.add_argument("--data", required=True, metavar="PATH",
                   help="Kaggle test.csv, an IDX image file, a directory of IDX files or a Keras mnist.npz (their "
                        "test images), a PNG/JPEG image, or a folder of them (subfolders included)")
    p.add_argument("--resize", action="store_true",
                   help="bring images of another size to the model's (without it they are refused)")
    p.add_argument("--out", default="submission.csv", metavar="CSV",
                   help="the CSV written: ImageId,Label (File,Label for image files), labels in the training data's "
                        "own names")
    p.add_argument("--proba", action="store_true",
                   help="write each class's probability instead of the label (columns p0..p9, or the class names)")
    p.add_argument("--backend", default="cpp", choices=["cpp", "numpy", "cuda"], help="kernel backend")
    p.set_defaults(func=cmd_predict)

    x = sub.add_parser("export", help="write a saved model for other tools: an ONNX graph (raw pixels in, "
                                      "probabilities out) or a safetensors file", formatter_class=_Help)
    x.add_argument("model", help="a model file written by train (model.npz, a single model or an ensemble)")
    x.add_argument("--format", choices=["onnx", "safetensors", "torch"], default="onnx",
                   help="onnx: one graph with the preprocessing inside, for onnxruntime; safetensors: the weights "
                        "in PyTorch's layout and the config as metadata; torch: a torch.export program (.pt2) "
                        "with the ONNX graph's input and output")
    x.add_argument("--out", default=None, metavar="FILE",
                   help="where it goes (default: beside the model, with the format as its suffix)")
    x.set_defaults(func=cmd_export)

    se = sub.add_parser("search", help="search hyperparameters with Optuna on the validation split",
                        formatter_class=_Help,
                        description="Searches a preset's optimizer, learning rate and batch size (and the MLP's "
                                    "hidden layers), pruning trials by per-epoch validation accuracy. Workers that "
                                    "name the same --storage and --study share one search.")
    se.add_argument("--model", choices=["mlp", "cnn", "cnn-fast"], default="mlp",
                    help="the preset searched (the CNNs whose recipes train without augmentation)")
    se.add_argument("--trials", type=_positive(int), default=20, help="trials run by this process")
    se.add_argument("--sampler", choices=["tpe", "random", "grid"], default="tpe",
                    help="how trials are chosen: Optuna's TPE, at random, or the fixed grid (mnistfast.search.GRID)")
    se.add_argument("--storage", default=None, metavar="URL",
                    help="Optuna storage, e.g. postgresql://user@host/db (default: sqlite in --out)")
    se.add_argument("--study", default="mnistfast", help="study name; workers sharing it share the search")
    se.add_argument("--epochs", type=_positive(int), default=3, help="epochs per trial")
    se.add_argument("--subset", type=_positive(int), default=None, help="train on the first N training images")
    se.add_argument("--data", default=None, metavar="PATH", help=DATA_HELP)
    se.add_argument("--backend", default="cpp", choices=["cpp", "numpy", "cuda"], help="kernel backend")
    se.add_argument("--seed", type=int, default=0, help="the validation split and model initialisation")
    se.add_argument("--out", default="runs/search", metavar="DIR", help="best.json, trials.csv and the SQLite file")
    se.add_argument("--jobs", type=_positive(int), default=1,
                    help="worker processes side by side, sharing the study and dividing the CPUs; --trials is "
                         "then the total")
    se.set_defaults(func=cmd_search)

    b = sub.add_parser("bench", help="time sgemm and training epochs: cpp vs NumPy/OpenBLAS vs PyTorch, "
                                     "or cuda vs cuBLAS and PyTorch CUDA", formatter_class=_Help)
    b.add_argument("--backend", choices=["cpp", "cuda"], default="cpp",
                   help="cpp: against NumPy/OpenBLAS and PyTorch CPU; cuda: against cuBLAS and PyTorch CUDA")
    b.add_argument("--rounds", type=_positive(int), default=5, help="interleaved rounds per measurement")
    b.add_argument("--gemm-rounds", type=_positive(int), default=30, help="sgemm calls per round")
    b.add_argument("--threads", type=_positive(int), default=None,
                   help="threads for the cpp backend and PyTorch (default: the CPUs this process may use)")
    b.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    b.add_argument("--quick", action="store_true", help="small shapes and 10k images: a smoke run")
    b.add_argument("--fast-cnn", type=int, default=0, metavar="SEEDS",
                   help="only race the cnn-fast recipe against PyTorch over this many seeds (time and accuracy)")
    b.add_argument("--out", default="bench.json", metavar="FILE", help="where the JSON report goes")
    b.set_defaults(func=cmd_bench)
    return parser


def cmd_search(args) -> int:
    from .search import run_search

    check_output_dir(args.out)
    if args.jobs > 1:
        return _search_jobs(args)
    result = run_search(args.trials, args.out, sampler=args.sampler, storage=args.storage, study=args.study,
                        epochs=args.epochs, subset=args.subset, data=args.data, backend=args.backend, seed=args.seed,
                        model=args.model)
    return _print_search_result(result, Path(args.out))


def _print_search_result(result: dict, out: Path, workers: str = "") -> int:
    print(f"\nbest validation accuracy {result['best_validation_accuracy']:.4f} (trial {result['best_trial']} of "
          f"{result['trials']} in study {result['study']!r}{workers}): {result['best_params']}")
    print(f"wrote {out / 'best.json'} and {out / 'trials.csv'}")
    return 0


def _search_jobs(args) -> int:
    """``search --jobs N``: N-1 worker processes and this one share the study and the trials, and
    divide the CPUs as any trainings side by side do (``mnistfast.core_share``); this process
    then writes the summary of them all."""
    import subprocess

    from .search import run_search

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    jobs = min(args.jobs, args.trials)
    shares = [args.trials // jobs + (i < args.trials % jobs) for i in range(jobs)]
    common = ["--model", args.model, "--sampler", args.sampler, "--storage", storage, "--study", args.study,
              "--epochs", str(args.epochs),
              "--backend", args.backend, "--seed", str(args.seed), "--out", str(out)]
    common += [x for flag, v in (("--subset", args.subset), ("--data", args.data)) if v is not None
               for x in (flag, str(v))]
    workers = [subprocess.Popen([sys.executable, "-m", "mnistfast", "search", "--trials", str(n), *common])
               for n in shares[1:]]
    try:
        run_search(shares[0], out, sampler=args.sampler, storage=storage, study=args.study, epochs=args.epochs,
                   subset=args.subset, data=args.data, backend=args.backend, seed=args.seed, model=args.model)
        failed = [w.args for w in workers if w.wait() != 0]
    except BaseException:
        for w in workers:
            w.terminate()
            w.wait()
        raise
    if failed:
        raise RuntimeError(f"search: {len(failed)} of {jobs - 1} worker processes failed (their lines are above)")
    result = run_search(0, out, sampler=args.sampler, storage=storage, study=args.study, epochs=args.epochs,
                        subset=args.subset, data=args.data, backend=args.backend, seed=args.seed, log=lambda *a: None,
                        model=args.model)
    return _print_search_result(result, out, f", {jobs} workers")


def cmd_plot(args) -> int:
    from .plots import plot_run

    if args.out:
        check_output_dir(args.out)
    for path in plot_run(args.run_dir, data=args.data, out_dir=args.out):
        print(f"wrote {path}")
    return 0


def cmd_eval(args) -> int:
    from .classes import class_names
    from .dataset import model_test_set
    from .metrics import classification_report, format_report
    from .serialization import load_model
    from .preprocessing import model_input
    from .storage import write_json

    out = check_output_file(Path(args.out) if args.out else Path(args.model).parent / "eval.json")
    model = load_model(args.model, backend=args.backend)
    data, seed, same = _eval_data(args, model.trained_on)
    X, y = model_test_set(model, data, held_out=same, seed=seed, resize=args.resize)
    if model.preprocessing is None:
        print("note: the model records no preprocessing; evaluating on pixels scaled to [0, 1]")
    X = model_input(model, X)
    scores = model.evaluate(X, y)
    report = {"model": str(args.model), "data": data or "bundled MNIST", "samples": int(len(y)),
              "loss": scores["loss"], **classification_report(y, model.predict(X), model.n_classes,
                                                               class_names(model))}
    print(f"{args.model} on {len(y)} test images: loss {scores['loss']:.4f}, accuracy {report['accuracy']:.4f}\n")
    print(format_report(report))
    write_json(out, report)
    print(f"\nwrote {out}")
    return 0


def _eval_data(args, trained_on) -> tuple:
    """The data and split seed ``eval`` scores on, and whether it is the data the model was
    trained on (then only its test split is scored): ``--data``, else what the model records; the
    first line printed says which, and when they are not the same."""
    def name(path):
        return path or "the bundled MNIST"

    if trained_on is None:
        print(f"evaluating on {name(args.data)} (the model does not record the data it was trained on)")
        data, recorded_seed, same = args.data, 0, True
    elif args.data is None:
        print(f"evaluating on the test split of the data the model was trained on: {name(trained_on['data'])}")
        data, recorded_seed, same = trained_on["data"], trained_on["seed"], True
    else:
        data, given = args.data, str(Path(args.data).resolve())
        same = given == trained_on["data"]
        if not same:
            print(f"note: evaluating on {given}, not on the data the model was trained on "
                  f"({name(trained_on['data'])})")
        recorded_seed = trained_on["seed"] if same else 0
    return data, recorded_seed if args.seed is None else args.seed, same


def cmd_export(args) -> int:
    from .export import SUFFIXES, export
    from .serialization import load_model

    out = check_output_file(Path(args.out) if args.out else Path(args.model).with_suffix(SUFFIXES[args.format]))
    model = load_model(args.model, backend="numpy")
    export(model, out, args.format)
    print(f"wrote {out}" + (": raw uint8 pixels (batch, features) in, probabilities out"
                            if args.format != "safetensors" else ""))
    return 0


def cmd_predict(args) -> int:
    from .classes import class_names
    from .dataset import fit_to_model, model_image_shape, read_inputs
    from .serialization import load_model
    from .preprocessing import model_input
    from .submission import write_probabilities, write_submission

    out = check_output_file(args.out)
    model = load_model(args.model, backend=args.backend)
    image_shape = model_image_shape(model)
    images, names = read_inputs(args.data, channels=image_shape[0],
                                resize=image_shape[1:] if args.resize else None)
    X = model_input(model, fit_to_model(images, image_shape, args.resize, args.data))
    classes = class_names(model)
    if args.proba:
        write_probabilities(out, model.predict_proba(X), classes, names)
    else:
        write_submission(out, [classes[k] for k in model.predict(X)], names)
    print(f"wrote {out}: {'probabilities' if args.proba else 'labels'} for {len(X)} images")
    return 0


def cmd_bench(args) -> int:
    from .bench import cpu as bench

    if args.fast_cnn:
        report = bench.fast_cnn_race(args.fast_cnn, threads=args.threads, include_torch=not args.no_torch)
    elif args.backend == "cuda":
        from .bench import cuda as bench_cuda

        report = bench_cuda.run(rounds=args.rounds, quick=args.quick, out=args.out, include_torch=not args.no_torch)
    else:
        report = bench.run(rounds=args.rounds, gemm_rounds=args.gemm_rounds, threads=args.threads,
                           include_torch=not args.no_torch, quick=args.quick)
    bench.write_report(report, args.out)
    print(f"\nwrote {args.out}")
    return 0


class _PipeGuard:
    """stdout that survives its reader going away (``mnistfast train | head -1``): once a write
    fails with a broken pipe, output goes to /dev/null and training carries on to the end."""

    def __init__(self, stream):
        self.stream, self.closed_pipe = stream, False

    def write(self, text):
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self):
        self.closed_pipe = True
        self.stream = open(os.devnull, "w")

    def isatty(self):
        return not self.closed_pipe and self.stream.isatty()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _build_model(args, backend, seed, data):
    """The preset ``--model`` names, sized for ``data``'s images and classes."""
    from .presets import preset

    mlp = dict(layers=args.layers, activation=args.activation, dropout=args.dropout, batchnorm=args.batchnorm)
    model = preset(args.model, data.image_shape, data.n_classes, backend=backend, seed=seed,
                   **(mlp if args.model == "mlp" else {}))
    model.classes, model.image_shape = list(data.classes), tuple(data.image_shape)
    return model


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training, with what to do next."""


def checkpoint_path(run_dir: Path) -> Path:
    """Where a run being written to ``run_dir`` keeps its checkpoint: beside it, hidden, so that
    an interruption never touches the previous run in ``run_dir``."""
    run_dir = Path(os.path.realpath(run_dir))
    return run_dir.parent / f".{run_dir.name}.checkpoint.npz"


def _resumed_args(args):
    """The arguments of the interrupted run whose checkpoint lies beside ``args.resume``."""
    from .storage import read_model

    ckpt = checkpoint_path(Path(args.resume))
    if not ckpt.is_file():
        raise ValueError(f"--resume {args.resume}: no interrupted run to go on with (no checkpoint {ckpt})")
    meta = read_model(ckpt)[0]
    saved = meta.get("extra", {}).get("args") if isinstance(meta.get("extra"), dict) else None
    if not isinstance(saved, dict):
        raise ValueError(f"{ckpt}: not a checkpoint of mnistfast train")
    resumed = argparse.Namespace(**{**saved, "func": args.func, "resume": args.resume, "verbose": args.verbose,
                                    "out": args.resume})
    resumed.checkpoint = ckpt
    return resumed


class _SigtermAsInterrupt:
    """SIGTERM stops training as Ctrl-C does (and leaves the checkpoint)."""

    def __enter__(self):
        def stop(signum, frame):
            raise KeyboardInterrupt

        try:
            self.previous = signal.signal(signal.SIGTERM, stop)
        except ValueError:  # not the main thread: leave the signal alone
            self.previous = None
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def cmd_train(args) -> int:
    if args.resume:
        args = _resumed_args(args)
    if args.epochs is not None and args.epochs < 0:
        raise ValueError(f"--epochs must be >= 0, got {args.epochs}")
    if args.model != "mlp" and (args.layers or args.dropout or args.batchnorm or args.activation != "relu"):
        raise ValueError("--layers, --dropout, --batchnorm and --activation apply to --model mlp only")
    # Checked and locked before any training; held until the run's files are in place.
    with RunDirectory(args.out or f"runs/{args.model}") as run_dir, _SigtermAsInterrupt():
        try:
            return _train(args, run_dir)
        except Interrupted:
            raise
        except KeyboardInterrupt:  # after the training, before its files were written
            if not checkpoint_path(run_dir.path).exists():
                raise
            raise Interrupted(f"before {run_dir.given} was written; the trained model is kept: go on with: "
                              f"mnistfast train --resume {run_dir.given}") from None


def _train(args, run_dir) -> int:
    """Train as ``args`` say and write the run into the checked, locked ``run_dir``."""
    from .backends import get_backend
    from .checkpoint import CheckpointEachEpoch, load_checkpoint, restore_callbacks
    from .data import train_val_split
    from .dataset import load_dataset
    from .ensemble import Ensemble
    from .image_files import parse_size
    from .preprocessing import Preprocessing
    from .precision import describe as describe_precision
    from .precision import resolve as resolve_precision
    from .presets import RECIPES
    from .storage import write_directory, write_json

    out = run_dir.given
    recipe = RECIPES[args.model]
    split = recipe.validation_split if args.validation_split is None else args.validation_split
    backend = get_backend(args.backend, **({"threads": args.threads} if args.backend == "cpp" and args.threads else {}))
    precision, why = resolve_precision(getattr(args, "precision", "fp32"), backend)  # older checkpoints lack it
    if why:
        print(f"mnistfast: note: {why}", file=sys.stderr)
    # Raw pixels in; the model records its preprocessing (and standardize's statistics) and
    # applies it, so the saved model takes raw pixels later too. Model selection (the plateau
    # callback) sees only the validation split; the test set is evaluated once, at the end.
    resize = getattr(args, "resize", None)  # a checkpoint of an earlier version has neither
    data = load_dataset(args.data, resize=resize, channels=getattr(args, "channels", None), seed=args.seed)
    print(data.describe())
    (X, y), (Xt, yt) = data.train, data.test
    val = None
    if split:
        (X, y), val = train_val_split(X, y, split, args.seed)
    options = {k: v for k, v in (("clipnorm", args.clipnorm), ("clipvalue", args.clipvalue),
                                 ("momentum", args.momentum)) if v is not None}
    if args.momentum is not None and (args.optimizer or recipe.optimizer) != "sgd":
        raise ValueError(f"--momentum is SGD's; the optimizer here is {args.optimizer or recipe.optimizer}")
    # A single model's run keeps a checkpoint after every epoch (an ensemble's does not).
    ckpt = checkpoint_path(run_dir.path) if args.ensemble == 1 else None
    resume = getattr(args, "checkpoint", None)
    if ckpt is not None and resume is None:
        ckpt.unlink(missing_ok=True)  # a fresh run into this directory gives up an interrupted one
    members, records = [], []
    for k in range(args.ensemble):
        seed = args.seed + k
        model = _build_model(args, backend, seed, data)
        if k == 0:  # float32 parameters, and the optimizer's state beside them in the file
            run_dir.require_room(3 * 4 * model.count_params() * args.ensemble)
        model.preprocessing = Preprocessing(args.normalize)
        model.trained_on = {"data": None if args.data is None else str(Path(args.data).resolve()), "seed": args.seed}
        if resize is not None:
            model.trained_on["resize"] = list(parse_size(resize))
        fit_kwargs = recipe.fit_kwargs(optimizer_options=options, optimizer=args.optimizer, lr=args.lr,
                                       lr_schedule=args.lr_schedule, epochs=args.epochs, batch_size=args.batch_size,
                                       weight_decay=args.weight_decay)
        if args.no_augment:
            fit_kwargs.pop("augment", None)
        if val is None:
            fit_kwargs.pop("callbacks", None)  # the plateau callback watches the validation loss
        who = f" (member {k + 1} of {args.ensemble}, seed {seed})" if args.ensemble > 1 else ""
        print(f"{model}{who} on {len(X)} training images ({len(Xt)} test); batch {fit_kwargs['batch_size']}, "
              f"{fit_kwargs['optimizer']} ({fit_kwargs['lr_schedule']}), {fit_kwargs['epochs']} epochs"
              + (f", {fit_kwargs['augment']}" if "augment" in fit_kwargs else "")
              + f", precision {describe_precision(backend, precision)}")
        saver = None
        if ckpt is not None:
            done, past = 0, []
            kept = list(fit_kwargs.get("callbacks", ()))
            if resume is not None:
                model, fit_kwargs["optimizer"], meta = load_checkpoint(resume, backend)
                restore_callbacks(kept, meta["callbacks"])
                done, past = meta["epoch"], meta["history"]
                print(f"resuming after epoch {done} of {fit_kwargs['epochs']} from {resume}")
            saver = CheckpointEachEpoch(ckpt, done, past, extra={"args": _recorded(args)}, keep=kept)
            fit_kwargs["callbacks"] = [*fit_kwargs.get("callbacks", ()), saver]
            fit_kwargs["initial_epoch"] = done
        t0 = time.perf_counter()
        try:
            history = model.fit(X, y, validation_data=val, verbose=args.verbose, precision=precision, **fit_kwargs)
        except KeyboardInterrupt:
            if saver is None or not ckpt.exists():
                raise
            raise Interrupted(f"after epoch {saver.epochs_done} of {fit_kwargs['epochs']}; go on with: mnistfast "
                              f"train --resume {out}") from None
        train_time = time.perf_counter() - t0
        test = model.evaluate(Xt, yt)
        print(f"test accuracy: {test['accuracy']:.4f} - test loss: {test['loss']:.4f} - "
              f"training time: {train_time:.2f}s")
        epochs = saver.history if saver is not None else \
            [dict(epoch=e, **{k: v[i] for k, v in history.history.items()}) for i, e in enumerate(history.epoch)]
        config = _recorded(args)
        config.update(seed=seed, optimizer=repr(fit_kwargs["optimizer"]), lr_schedule=str(fit_kwargs["lr_schedule"]),
                      epochs=fit_kwargs["epochs"], batch_size=fit_kwargs["batch_size"], validation_split=split,
                      augment=repr(fit_kwargs.get("augment")), out=str(out), precision=precision)
        records.append({"config": config, "epochs": epochs, "train_time_s": train_time, "test_loss": test["loss"],
                        "test_accuracy": test["accuracy"]})
        members.append(model)

    record = records[0]
    files = {"model.npz": members[0].save}
    if len(members) > 1:
        ensemble = Ensemble(members)
        score = ensemble.evaluate(Xt, yt)
        each = ", ".join(f"{r['test_accuracy']:.4f}" for r in records)
        print(f"ensemble of {len(members)}: test accuracy {score['accuracy']:.4f} - test loss {score['loss']:.4f} "
              f"(members: {each})")
        record = {**records[0], "members": records, "test_accuracy": score["accuracy"], "test_loss": score["loss"],
                  "train_time_s": sum(r["train_time_s"] for r in records)}
        files = {"model.npz": ensemble.save}
    # The model, its history and its figures land together or not at all (see write_directory).
    files["history.json"] = lambda path: write_json(path, record)
    files[RUN_MARKER] = lambda path: write_json(path, {"format": "mnistfast.run/1", "written_by": __version__})
    if args.plots:
        from .plots import run_figures

        files.update(run_figures(members[0], records[0], Xt, yt))
    try:
        write_directory(run_dir.path, files)
    except OSError as e:
        if ckpt is None or not ckpt.exists():
            raise
        raise ValueError(f"could not write {out} ({e.strerror or e}); the trained model is kept in {ckpt}: "
                         f"`mnistfast train --resume {out}` writes it") from None
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)
    print(f"wrote {out}: {', '.join(f for f in files if f != RUN_MARKER)}")
    return 0


def _recorded(args) -> dict:
    """The run's arguments as JSON (for history.json and the checkpoint)."""
    return {k: v for k, v in vars(args).items() if k not in ("func", "command", "resume", "checkpoint")}


def _config_flags(path, parser) -> list:
    """The command-line flags a ``train --config`` file stands for: a search's ``best.json`` (its
    ``train`` entry) or an object of ``train``'s flag names (``batch_size`` or ``batch-size``)
    and values. Each goes through the flag's own parsing, so a bad value reads as a bad flag."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        parser.error(f"--config {path}: {e}")
    config = config.get("train", config) if isinstance(config, dict) else config
    if not isinstance(config, dict):
        parser.error(f"--config {path}: expected a JSON object of flags, got {type(config).__name__}")
    known = {a.dest: a for a in parser._actions if a.option_strings}
    flags = []
    for key, value in config.items():
        dest = str(key).replace("-", "_")
        if dest not in known or dest in ("config", "resume", "help"):
            parser.error(f"--config {path}: {key!r} is not a train flag")
        action, flag = known[dest], known[dest].option_strings[-1]
        if action.nargs == 0:  # a switch: on when true
            flags += [flag] if value is True else []
        else:
            flags += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return flags


def main(argv=None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if getattr(args, "config", None):  # the file's flags first: those given here override them
        at = argv.index("train") + 1
        args = parser.parse_args([*argv[:at], *_config_flags(args.config, parser.train_parser), *argv[at:]])
    guard = sys.stdout = _PipeGuard(sys.stdout)
    try:
        code = args.func(args)
    except (ValueError, TypeError, FloatingPointError, ImportError, RuntimeError) as e:
        print(f"mnistfast: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # files, permissions, a full disk: expected, so one line and no traceback
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"mnistfast: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except MemoryError as e:  # what was asked for does not fit: say so, without the traceback
        print(f"mnistfast: error: out of memory{f' ({e})' if str(e) else ''}; ask for a smaller model, batch "
              "or data set", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"mnistfast: interrupted{f' {e}' if str(e) else ''}", file=sys.stderr)
        return 130
    finally:
        sys.stdout = guard.stream if not guard.closed_pipe else sys.__stdout__
    if guard.closed_pipe:
        print("mnistfast: error: standard output was closed early; the command ran to the end regardless "
              "(its files are written)", file=sys.stderr)
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
