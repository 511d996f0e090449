"""The CLI's options that are fields of a config dataclass: one table per dataclass, one entry per field.

The dataclass gives each option its **default and type** (``dataclasses.fields`` and its type hints:
``pipeline/index_config.py`` IndexConfig, ``retrieval/params.py`` SearchParams and ClipSearchParams,
``retrieval/copies.py`` CopyParams, ``pipeline/train_config.py`` TrainConfig); the table gives its **CLI
name and help** (and any other ``typer.Option`` setting, e.g. a callback that checks the value). The search
table's help lines and accepted ranges are retrieval/params.py ``PARAMS``', which the service reads too. A field
that is not an option says so with :class:`NotOnCli` and why, so that every field is in its table
(``tests/test_cli_options.py`` fails on one that is not). Ranges stay where the code checks them
(``SearchParams.validate`` against ``PARAMS``, ``DecodeLimit``): the commands call those checks.

A command takes table options by naming them as parameter defaults, then ``@derived`` turns them into
typer parameters (typer reads a function's ``__signature__``)::

    @app.command()
    @derived
    def search(query: str = typer.Argument(...), store=INDEX.field("store"), params=SEARCH.fields(), ...):
        SearchParams(**params)       # params: {field: value}; store: the value of --store

``INDEX.field(name)`` is one option, passed under the field's name; ``INDEX.fields(...)`` is several,
passed as one dict by field name. Either may replace the help text for its command.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import typer

from vidseek.pipeline.index_config import IndexConfig
from vidseek.pipeline.train_config import TrainConfig
from vidseek.retrieval.copies import CopyParams
from vidseek.retrieval.params import PARAMS, ClipSearchParams, SearchParams


def one_of(*choices: str) -> Callable[[str], str]:
    """A typer callback refusing a value outside ``choices`` (the message lists them)."""

    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


@dataclass(frozen=True)
class CliOption:
    help: str
    name: str | None = None  # the option's name when it is not the field's (decode-timeout for decode_timeout_s)
    argument: bool = False  # a positional argument, not an --option
    off: str | None = None  # a flag's off switch when not --no-NAME (random-batches for --hard-negatives)
    settings: dict[str, Any] = field(default_factory=dict)  # further typer.Option settings (callback, flags, …)


@dataclass(frozen=True)
class NotOnCli:
    reason: str


@dataclass(frozen=True)
class _Take:
    """A parameter default naming table options; ``derived`` replaces it (see the module docstring)."""

    table: OptionTable
    names: tuple[str, ...]
    helps: dict[str, str]
    spread: bool  # True: one option, passed under its field's name; False: a dict {field: value}


class OptionTable:
    """Options of one config dataclass: default and type from the dataclass, name and help from ``entries``."""

    def __init__(self, cls: type, entries: dict[str, CliOption | NotOnCli]) -> None:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(entries) - set(names))
        if unknown:  # a renamed or removed field: the command built from it would be wrong
            raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)} (apps/cli/options.py)")
        self.cls = cls
        self.entries = entries
        self.missing = [n for n in names if n not in entries]  # tests/test_cli_options.py fails on any
        self._fields = {f.name: f for f in dataclasses.fields(cls)}
        self._hints = typing.get_type_hints(cls)

    def options(self) -> dict[str, CliOption]:
        return {n: e for n, e in self.entries.items() if isinstance(e, CliOption)}

    def cli_name(self, name: str) -> str:
        """The option's name on the command line and in a --config file, without dashes: decode-timeout."""
        return self._option(name).name or name.replace("_", "-")

    def help(self, name: str) -> str:
        return self._option(name).help

    def default(self, name: str) -> Any:
        f = self._fields[name]
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return ...  # required

    def field(self, name: str, help: str | None = None) -> Any:
        """One option as a parameter default; the command gets its value under the field's name."""
        self._option(name)
        return _Take(self, (name,), {name: help} if help else {}, spread=True)

    def fields(self, *names: str, exclude: tuple[str, ...] = (), help: dict[str, str] | None = None) -> Any:
        """Options (``names``, default: every option in table order, less ``exclude``) as one parameter
        default; the command gets ``{field: value}``."""
        for n in (*names, *exclude, *(help or {})):
            self._option(n)
        chosen = names or tuple(n for n in self.options() if n not in exclude)
        return _Take(self, chosen, dict(help or {}), spread=False)

    def parameter(self, name: str, help: str | None = None) -> inspect.Parameter:
        """The typer parameter of one field: named as its option (dashes as underscores), typed and
        defaulted by the dataclass."""
        entry = self._option(name)
        text = help or entry.help
        if entry.argument:
            info = typer.Argument(self.default(name), help=text, **entry.settings)
        else:
            decls = (f"--{entry.name}",) if entry.name else ()
            if entry.off:
                decls = (f"--{self.cli_name(name)}/--{entry.off}",)
            info = typer.Option(self.default(name), *decls, help=text, **entry.settings)
        return inspect.Parameter(
            self.cli_name(name).replace("-", "_"),
            inspect.Parameter.KEYWORD_ONLY,
            default=info,
            annotation=self._hints[name],
        )

    def _option(self, name: str) -> CliOption:
        entry = self.entries.get(name)
        if not isinstance(entry, CliOption):
            raise TypeError(f"{self.cls.__name__}.{name} is not a CLI option ({entry})")
        return entry


def derived(fn: Callable) -> Callable:
    """Replace each parameter whose default is ``TABLE.field(…)`` / ``TABLE.fields(…)`` by the typer
    parameters of those fields; the wrapped command receives their values by field name."""
    sig = inspect.signature(fn, eval_str=True)
    params: list[inspect.Parameter] = []
    takes: dict[str, tuple[_Take, dict[str, str]]] = {}  # command parameter -> (take, {option param: field})
    for p in sig.parameters.values():
        take = p.default
        if not isinstance(take, _Take):
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        made = [take.table.parameter(n, take.helps.get(n)) for n in take.names]
        takes[p.name] = (take, {m.name: n for m, n in zip(made, take.names)})
        if take.spread and made[0].name != p.name:
            raise TypeError(f"{fn.__name__}: parameter {p.name!r} takes option {made[0].name!r}: name it so")
        params.extend(made)
    seen = [p.name for p in params]
    if len(seen) != len(set(seen)):
        raise TypeError(f"{fn.__name__}: a parameter name appears twice in {seen}")

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        for name, (take, by_field) in takes.items():
            values = {f: kwargs.pop(p) for p, f in by_field.items()}
            kwargs[name] = next(iter(values.values())) if take.spread else values
        return fn(**kwargs)

    del command.__wrapped__  # typer must read the signature below, not fn's
    command.__signature__ = sig.replace(parameters=params)
    command.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not p.empty}
    return command


STORE_HELP = "Milvus Lite path (a directory) or Milvus server URI (http://host:19530)"
MODEL_HELP = (
    "registry name or open_clip architecture (see `vidseek models`). The default, tiny-random, has random "
    "weights and finds nothing (tests and smoke runs); for real search pass an open_clip architecture with "
    "trained weights, e.g. --model ViT-B-32 --pretrained /path/to/open_clip_model.safetensors (or "
    "--pretrained laion2b_s34b_b79k where the model hub is reachable)"
)
PRETRAINED_HELP = (
    "weights for --model: an open_clip tag (downloaded from the model hub), a local checkpoint path, or "
    "'none' (random weights); default: the registry's (open_clip architectures: none)"
)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # operators/device.py PRECISIONS and auto (checked by a test)

# In the order `vidseek index --help` lists them.
INDEX = OptionTable(
    IndexConfig,
    {
        "source": CliOption("directory (recursive), glob, video file, or list file (.txt/.csv/.jsonl)", argument=True),
        "store": CliOption(STORE_HELP),
        "model": CliOption(MODEL_HELP),
        "pretrained": CliOption(PRETRAINED_HELP),
        "sampling": CliOption("fps:R | uniform:N | keyframes"),
        "address": CliOption("Ray address: 'auto' or ray://host:10001 (default: local Ray)"),
        "prune": CliOption("remove rows of files no longer in SOURCE"),
        "retry_failed": CliOption("re-attempt videos recorded as failed"),
        "max_failures": CliOption("stop once more than this many videos failed"),
        "chunk_frames": CliOption("most frames per decoded batch (bounds memory)"),
        "decoder": CliOption(
            "auto: the faster per codec (PyAV for H.264/HEVC, decord for VP9/AV1), the other as fallback",
            settings={"callback": one_of("auto", "decord", "pyav")},
        ),
        "skip_loop_filter": CliOption("decode without the loop filter (PyAV): less CPU, slightly different pixels"),
        "decode_timeout_s": CliOption(
            "most seconds one video may take to decode, plus --decode-timeout-per-s × its duration; then it is "
            "recorded failed",
            name="decode-timeout",
        ),
        "decode_timeout_per_s": CliOption("seconds allowed per second of video (see --decode-timeout)"),
        "head": CliOption(
            "a learned head (HEAD.pt from `vidseek train`): also write learned video vectors (videos already "
            "indexed get them from their stored frames)"
        ),
        "merge_similar": CliOption(
            "thin: merge consecutive frames whose cosine to a run's first is ≥ this (0.95: near-duplicates) into "
            "one row spanning them; default: the store's recorded threshold, or none"
        ),
        "frame_index": CliOption(
            "a new store's frame index: HNSW (default), IVF_FLAT, IVF_SQ8, IVF_PQ or DISKANN (compressed, for "
            "large libraries on a Milvus server; docs/scale.md)"
        ),
        "storage_options": CliOption(
            "URL sources (s3://, gs://, https://): fsspec options as a JSON object, e.g. '{\"anon\": true}' or "
            '\'{"endpoint_url": "http://minio:9000", "key": "…", "secret": "…"}\'; default: credentials from the '
            "environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, …) and profile files. Never logged or stored"
        ),
        "device": CliOption("auto | cpu | cuda"),
        "precision": CliOption(
            "CLIP's precision: auto is bf16 on CUDA, fp32 on the CPU (docs/gpu.md); vectors are stored as float32",
            settings={"callback": one_of(*PRECISIONS)},
        ),
        "store_retry_s": CliOption(
            "server stores: seconds to wait for a server that stops answering", name="store-retry"
        ),
        "encode_batch": NotOnCli("the resource plan's (pipeline/resources.py: 512 per GPU, 64 on the CPU)"),
        "decode_pool": NotOnCli("the resource plan's (pipeline/resources.py: every spare core decodes)"),
        "num_cpus": NotOnCli("Ray detects the machine's cores (tests and the service set it)"),
        "num_gpus": NotOnCli("Ray detects the machine's GPUs (tests declare fake ones)"),
        "prefix": NotOnCli("collection names: one store per path or URI on the command line"),
        "progress": NotOnCli("a progress bar when stderr is a terminal and --json is off"),
    },
)


def _search_help(name: str) -> str:
    """retrieval/params.py PARAMS' help line, with the range validate() accepts (choices are in the line)."""
    spec = PARAMS[name]
    limits = "" if spec.choices is not None else spec.describe()
    return f"{spec.help} ({limits})" if limits else spec.help


# Help and accepted values are retrieval/params.py PARAMS' (the service's are too); `search` checks them with
# SearchParams.validate() before it opens the store.
SEARCH = OptionTable(
    SearchParams,
    {
        **{name: CliOption(_search_help(name)) for name in PARAMS},  # rerank: --rerank/--no-rerank
        "filter": NotOnCli("built from the repeatable --filter key=value options (typed, quoted)"),
    },
)

# `vidseek search --video`: the clip query's own knobs (k and the filter are the search table's)
CLIP = OptionTable(
    ClipSearchParams,
    {
        "k": NotOnCli("--k of the search options"),
        "candidates": CliOption(
            "--video: videos aligned with the clip (the most hit by its frames)", name="clip-candidates"
        ),
        "per_frame": CliOption("--video: videos per clip frame in the frame ANN", name="clip-per-frame"),
        "threshold": CliOption(
            "--video: cosine above which a clip frame matches a stored frame (alignment θ)", name="clip-threshold"
        ),
        "gap": CliOption("--video: alignment cost of a skipped frame", name="clip-gap"),
        "filter": NotOnCli("built from the repeatable --filter key=value options (typed, quoted)"),
    },
)

# `vidseek copies`; docs/copies.md says how each value was chosen
COPIES = OptionTable(
    CopyParams,
    {
        "min_seconds": CliOption("shortest shared segment reported, in both videos (s)"),
        "threshold": CliOption("whitened frame cosine of the same picture (alignment θ)"),
        "probe_threshold": CliOption("plain frame cosine at which a frame search hit makes a candidate"),
        "k": CliOption("videos per frame in the candidate search"),
        "gap": CliOption("alignment cost of a skipped frame"),
        "generic_videos": CliOption("a frame near this many other videos is generic (black, a title card)"),
        "cover": CliOption("share of a video's content a segment covers to make a duplicate or an excerpt"),
        "whiten": CliOption("whitening power: 1 full PCA whitening, 0 plain cosines"),
        "whiten_sample": CliOption("frame rows the whitening is estimated from"),
        "batch": NotOnCli("query frames per ANN call: memory per call, not the result"),
    },
)

# `vidseek train`, in the order its --help lists them after the files and the store
TRAIN = OptionTable(
    TrainConfig,
    {
        "dataset": NotOnCli("the command's own --dataset, typed Path: typer checks that the file exists"),
        "out": NotOnCli("the command's own --out, typed Path and required (no head.pt default)"),
        "store": NotOnCli("the index's --store and default; None when the store is missing and --video-root feeds"),
        "video_root": NotOnCli("the command's own --video-root, typed Path: a directory"),
        "head_type": CliOption("seqTransf | seqLSTM"),
        "frames": CliOption("frames sampled uniformly per video (CLIP4Clip: 12)"),
        "epochs": CliOption("passes over the training videos"),
        "batch_size": CliOption("videos per batch (one caption each)"),
        "lr": CliOption("peak learning rate (AdamW)"),
        "weight_decay": CliOption("on weight matrices (not biases, LayerNorm, embeddings)"),
        "warmup": CliOption("share of steps with linear warm-up (then cosine decay)"),
        "grad_clip": NotOnCli("CLIP4Clip's gradient-norm clip, 1.0: not a knob of the command"),
        "hard_negatives": CliOption(
            "batch each video with its nearest-caption neighbour (e.g. 'X then Y' beside 'Y then X'); default: "
            "random batches as in CLIP4Clip",
            off="random-batches",
        ),
        "val_fraction": CliOption("share of videos held out for validation (0: none)"),
        "seed": CliOption("seed of the head's init, the split, and each epoch's captions and order"),
        "split": CliOption("MSR-VTT JSON split to train on (train/validate/test)"),
        "sampling": CliOption("frame sampling for videos decoded on the fly"),
        "model": CliOption(
            "without a store: encoder to use (default tiny-random: random weights, finds nothing; for a real "
            "encoder e.g. --model ViT-B-32 --pretrained /path/to/open_clip_model.safetensors); with one: must be "
            "the store's"
        ),
        "pretrained": CliOption("weights for --model: open_clip tag, local checkpoint path, or 'none' (random)"),
        "prefix": NotOnCli("collection names: one store per path or URI on the command line"),
        "device": CliOption("auto | cpu | cuda"),
        "threads": CliOption("CPU threads for training"),
        "resume": CliOption("continue from OUT.partial (same options)", name="resume"),
        "stop_after": NotOnCli("ends a run early for tests (a partial checkpoint is kept); --resume continues it"),
        "progress": NotOnCli("a progress bar when stderr is a terminal and --json is off"),
        "verbose": NotOnCli("the command prints training lines itself (to stderr with --json); -v sets the log level"),
    },
)
