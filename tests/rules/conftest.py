"""The shared view builder for the rule tests: a `RunView` from synthetic curves, params, the
recorder's per-layer curves and a diagnostics dict shaped as the recorder writes it into
`nnaudit/diagnostics.json`. No torch, no store, no training: each rule test builds the run it
needs in a few lines and asks the rule.

Import the helpers with `from tests.rules.conftest import ...` (as other tests import
`tests.conftest`). Rules are looked up by cause id (`rule_for`), never by module path, so the
tests do not care which file a rule lives in.

The diagnostics builders mirror the recorder, field by field:
- `mlp_model` is `recorder/session.py:describe_model` + the session's `layers` and `init`
  facts for an `nn.Sequential` of Linear layers (as `sample_runs.faults.mlp` builds it);
- `input_stats` is `recorder/probes/data.py:_RunningStats.summary` over given per-feature
  means and stds; `target_stats` is `probes/loss.py:_merge_stats`;
- `loader` is `probes/loader.py:loader_facts` plus the iteration counters;
- `clip_summary` is `probes/clipping.py:ClipProbe.summary` over given pre-clip/limit ratios;
- `fingerprint_summary` is `probes/fingerprints.py:BatchFingerprints.summary`.
`healthy_diagnostics()` starts from what the recorder wrote for a real healthy run (an 8-32-16-3
MLP, SGD with momentum, shuffled DataLoader, cross-entropy on 3 classes); tests replace the
sections their fault changes.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from mlflow_nnaudit.auditor.curves import GRAD_NORM, LEARNING_RATE, TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS, Curve
from mlflow_nnaudit.auditor.rules import ALL_RULES, Finding, Rule, RunView

SEED = 424242
#: default curve length (optimizer steps, one loss point per step)
N = 600
#: the recorder samples every this many steps by default in these tests
SAMPLE_EVERY = 10


# --- rules ------------------------------------------------------------------------------------
def rule_for(cause_id: str) -> Rule:
    """The registered rule that decides `cause_id` (works wherever the rule's class lives)."""
    hits = [r for r in ALL_RULES if r.cause == cause_id]
    assert len(hits) == 1, f"{len(hits)} rules registered for {cause_id!r}"
    return hits[0]


def check(cause_id: str, view: RunView) -> Finding | None:
    """What the audit gets from the rule on the view: nothing when the rule does not apply to
    this kind of run (`Rule.applies`), else its finding or None."""
    rule = rule_for(cause_id)
    return rule.evaluate(view) if rule.applies(view) else None


def fires(cause_id: str, view: RunView) -> Finding:
    """The rule's finding on the view; fails the test when the rule stays quiet."""
    f = check(cause_id, view)
    assert f is not None, f"{cause_id} did not fire"
    assert f.cause == cause_id
    return f


def quiet(cause_id: str, view: RunView) -> None:
    """Fails the test when the rule fires, saying what it saw."""
    f = check(cause_id, view)
    assert f is None, f"{cause_id} fired: {f.summary if f else ''}"


# --- curve shapes (numpy arrays) ---------------------------------------------------------------
def rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng([SEED, *seed])


def ar1_noise(gen: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) noise with marginal standard deviation `sd`, drawn from `gen`."""
    e = gen.standard_normal(n)
    y = np.empty(n)
    y[0] = e[0]
    for i in range(1, n):
        y[i] = phi * y[i - 1] + math.sqrt(1 - phi**2) * e[i]
    return sd * y


def ar1(n: int = N, phi: float = 0.5, sd: float = 0.05, seed: int = 0) -> np.ndarray:
    """AR(1) noise (minibatch losses are autocorrelated: consecutive batches share the weights)."""
    return ar1_noise(rng(1, seed), n, phi, sd)


def falling(
    n: int = N,
    start: float = 1.4,
    end: float = 0.3,
    knee: float = 0.15,
    noise: float = 0.0,
    phi: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """Exponential decay from `start` towards `end`, e-folding every `knee` share of the run
    (0.15: converged well before the end; 1.0 and more: still falling at the end), plus AR(1)
    noise of standard deviation `noise`."""
    t = np.arange(n, dtype=float)
    y = end + (start - end) * np.exp(-t / (knee * n))
    return y + (ar1(n, phi, noise, seed) if noise else 0.0)


def linear(
    n: int = N, start: float = 1.0, end: float = 1.0, noise: float = 0.0, phi: float = 0.5, seed: int = 0
) -> np.ndarray:
    """A straight line from `start` to `end` (flat when they are equal), plus AR(1) noise."""
    y = np.linspace(start, end, n)
    return y + (ar1(n, phi, noise, seed) if noise else 0.0)


def flat(n: int = N, level: float = 1.0, noise: float = 0.0, phi: float = 0.5, seed: int = 0) -> np.ndarray:
    return linear(n, level, level, noise, phi, seed)


def nan_from(values: np.ndarray, k: int, value: float = math.nan) -> np.ndarray:
    """A copy whose points from index k on are `value` (NaN, or inf)."""
    out = np.asarray(values, dtype=float).copy()
    out[k:] = value
    return out


def healthy_loss(n: int = N, seed: int = 0) -> np.ndarray:
    """A healthy minibatch training loss: 1.4 -> 0.3, converged by a third of the run, AR(1) noise."""
    return falling(n, 1.4, 0.3, knee=0.12, noise=0.04, seed=seed)


def healthy_train(n: int = N, seed: int = 0, floor: float = 0.3) -> np.ndarray:
    """A healthy training loss with white noise (the shape the set-up rules' first tests used)."""
    t = np.arange(n)
    return floor + 1.1 * np.exp(-t / (0.15 * n)) + 0.08 * rng(seed).standard_normal(n)


def per_epoch(values_at_epochs: np.ndarray, n_steps: int = N) -> np.ndarray:
    """The steps at which a per-epoch curve of len(values) points is logged over n_steps steps
    (the end of each epoch, as the recorder logs `val_loss` at the step count reached)."""
    k = len(values_at_epochs)
    return np.round(np.arange(1, k + 1) * n_steps / k).astype(float) - 1


# --- curves and views ---------------------------------------------------------------------------
def curve(key: str, values: Any, steps: Any = None) -> Curve:
    values = np.asarray(values, dtype=float)
    return Curve(key, np.arange(len(values), dtype=float) if steps is None else np.asarray(steps, dtype=float), values)


def _as_curve(key: str, values: Any, n_steps: int | None) -> Curve:
    """An array becomes a curve over the training steps: one point per step when it is as long
    as the training curve (or there is none), else spread evenly over them (per-epoch points)."""
    if isinstance(values, Curve):
        return values
    values = np.asarray(values, dtype=float)
    if n_steps is None or len(values) == n_steps:
        return curve(key, values)
    return curve(key, values, per_epoch(values, n_steps))


def layer_curves(kind: str, per_layer: dict[str, Any], every: int = SAMPLE_EVERY) -> dict[str, Curve]:
    """The recorder's per-layer curves `nnaudit/<kind>/<layer>` (kind: dead_relu, saturated,
    grad_norm, update_ratio, weight_norm), one point per sampled step. A scalar value becomes a
    constant curve of 60 samples."""
    out = {}
    for layer, values in per_layer.items():
        v = np.full(60, float(values)) if np.isscalar(values) else np.asarray(values, dtype=float)
        out[f"nnaudit/{kind}/{layer}"] = curve(f"nnaudit/{kind}/{layer}", v, np.arange(len(v)) * every)
    return out


def sampled_curve(key: str, values: Any, every: int = SAMPLE_EVERY) -> dict[str, Curve]:
    """One recorder curve logged on sampled steps (e.g. `nnaudit/labels_per_batch`)."""
    v = np.asarray(values, dtype=float)
    return {key: curve(key, v, np.arange(len(v)) * every)}


def make_view(
    train: Any = None,
    val: Any = None,
    *,
    lr: Any = None,
    grad_norm: Any = None,
    train_acc: Any = None,
    val_acc: Any = None,
    params: dict[str, str] | None = None,
    extra: dict[str, Curve] | None = None,
    diagnostics: dict | None = None,
) -> RunView:
    """A run as the auditor hands it to the rules. Arrays become curves under the names the
    recorder logs when `diagnostics` is given (`nnaudit/train_loss`, ...) and the plain names
    a user logs otherwise; arrays shorter than the training curve are per-epoch points."""
    pre = "nnaudit/" if diagnostics is not None else ""
    n = None if train is None else len(train)
    curves: dict[str, Curve] = {}
    for role, values, key in (
        (TRAIN_LOSS, train, f"{pre}train_loss"),
        (VAL_LOSS, val, f"{pre}val_loss"),
        (LEARNING_RATE, lr, f"{pre}lr"),
        (GRAD_NORM, grad_norm, f"{pre}grad_norm"),
        (TRAIN_ACC, train_acc, "train_acc"),
        (VAL_ACC, val_acc, "val_acc"),
    ):
        if values is not None:
            curves[role] = _as_curve(key, values, None if role == TRAIN_LOSS else n)
    return RunView(curves, params=params or {}, extra_curves=extra or {}, diagnostics=diagnostics)


@pytest.fixture
def view():
    """`make_view` as a fixture, for tests that prefer one."""
    return make_view


# --- the recorder's diagnostics, section by section ---------------------------------------------
def optimizer_facts(
    name: str = "SGD", lr: float = 0.1, weight_decay: float = 0, momentum: float | None = 0.9, param_groups: int = 1
) -> dict[str, Any]:
    """`session._optimizer_facts` (also logged as the run's params)."""
    out: dict[str, Any] = {
        "nnaudit.optimizer": name,
        "nnaudit.optimizer.lr": lr,
        "nnaudit.optimizer.weight_decay": weight_decay,
    }
    if momentum is not None:
        out["nnaudit.optimizer.momentum"] = momentum
    if name.startswith("Adam"):
        out["nnaudit.optimizer.betas"] = "0.9,0.999"
    out["nnaudit.optimizer.param_groups"] = param_groups
    return out


def recorder_params(diag: dict) -> dict[str, str]:
    """The params the recorder logs next to the diagnostics (as MLflow stores them: strings)."""
    params = {k: str(v) for k, v in diag.get("optimizer", {}).items()}
    if "model" in diag:
        params["nnaudit.model.parameters"] = str(diag["model"]["parameters"])
    return params


def mlp_model(
    widths: list[int],
    *,
    act: str = "ReLU",
    dropout: float = 0.0,
    norm: str | None = None,
    bias: bool = True,
    head_bias: bool | None = None,
    last: str | None = None,
    init_scale: float = 0.58,
    not_in_optimizer: tuple[str, ...] = (),
    frozen: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The `model` section for `nn.Sequential(Linear, [norm], act, [Dropout], ..., Linear, [last])`
    over `widths` (inputs first); `head_bias` (default: `bias`) for the output layer. Weights at
    `init_scale` x LeCun's 1/sqrt(fan_in) (PyTorch's default gives ~0.58)."""
    leaves: list[tuple[str, str, list[list[int]]]] = []  # name, type, parameter shapes

    def add(kind: str, shapes: list[list[int]]) -> None:
        leaves.append((str(len(leaves)), kind, shapes))

    for i in range(len(widths) - 1):
        fan_in, out = widths[i], widths[i + 1]
        with_bias = bias if i < len(widths) - 2 or head_bias is None else head_bias
        add("Linear", [[out, fan_in]] + ([[out]] if with_bias else []))
        if i < len(widths) - 2:
            if norm:
                add(norm, [[out], [out]])
            add(act, [])
            if dropout:
                add("Dropout", [])
    if last:
        add(last, [])
    norms = ("BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm")
    weight = [(n, s) for n, k, s in leaves if k == "Linear"]
    no_bias_without_norm = []
    for j, (n, k, s) in enumerate(leaves):
        if k == "Linear" and len(s) == 1 and not (j + 1 < len(leaves) and leaves[j + 1][1] in norms):
            no_bias_without_norm.append(n)
    param_names = [(f"{n}.{'weight' if j == 0 else 'bias'}", shape) for n, _, s in leaves for j, shape in enumerate(s)]
    in_opt = {n: s for n, s in param_names if n not in not_in_optimizer and n not in frozen}
    init = []
    for n, s in weight:
        rows, fan_in = s[0][0], s[0][1]
        init.append(
            {
                "param": f"{n}.weight",
                "shape": s[0],
                "std": init_scale / math.sqrt(fan_in),
                "lecun_std": 1 / math.sqrt(fan_in),
                "scale_vs_lecun": init_scale,
                "constant": False,
                "identical_rows_share": 1 / rows,
            }
        )
    return {
        "class": "Sequential",
        "layers": {n: s for n, _, s in leaves if s and any(f"{n}.{p}" in in_opt for p in ("weight", "bias"))},
        "depth": len(weight),
        "widths": [s[0][0] for _, s in weight],
        "activations": sorted({k for _, k, _ in leaves if k in ("ReLU", "Tanh", "Sigmoid", "GELU", "Softmax")}),
        "last_module": leaves[-1][1],
        "last_module_name": leaves[-1][0],
        "dropout": [dropout for _, k, _ in leaves if k == "Dropout"],
        "normalization": sorted({k for _, k, _ in leaves if k in norms}),
        "no_bias_layers": [n for n, s in weight if len(s) == 1],
        "no_bias_without_norm": no_bias_without_norm,
        "parameters": int(sum(np.prod(shape) for _, shape in param_names)),
        "trainable_not_in_optimizer": [n for n, _ in param_names if n in not_in_optimizer],
        "requires_grad_false": [n for n, _ in param_names if n in frozen],
        "init": init,
    }


def layer_names(model: dict) -> list[str]:
    """The model's weight layers in order, as the recorder names their per-layer curves."""
    return list(model["layers"])


def _lower_median(v: np.ndarray) -> float:
    """torch.median: the lower of the two middle values."""
    s = np.sort(np.asarray(v, dtype=float))
    return float(s[(len(s) - 1) // 2])


def input_stats(
    mean: Any,
    std: Any,
    *,
    batches: int = 10,
    batch_size: int = 32,
    nonfinite_share: float = 0.0,
    max_abs: float | None = None,
) -> dict[str, Any]:
    """`inputs.train` / `inputs.eval`: per-feature statistics as `_RunningStats.summary` gives
    them. A feature with std 0 is constant."""
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    constant = std == 0
    nonconst = std[~constant]
    return {
        "batches": batches,
        "features": len(mean),
        "median_batch_size": batch_size,
        "nonfinite_share": nonfinite_share,
        "constant_features": int(constant.sum()),
        "median_abs_mean": _lower_median(np.abs(mean)),
        "median_std": _lower_median(std),
        "max_abs": float(max_abs if max_abs is not None else np.max(np.abs(mean) + 4 * std)),
        "std_ratio": float(nonconst.max() / max(nonconst.min(), 1e-12)) if len(nonconst) else 1.0,
        "feature_mean": [round(float(v), 6) for v in mean[:64]],
        "feature_std": [round(float(v), 6) for v in std[:64]],
    }


def standardised_features(
    features: int = 8, seed: int = 0, batches: int = 10, batch_size: int = 32, samples: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature means and stds of batches drawn from standardised data: near 0 and 1, with
    the sampling error of `samples` values (batches x batch_size by default)."""
    r = rng(2, seed)
    m = samples or batches * batch_size
    return r.standard_normal(features) / math.sqrt(m), 1 + r.standard_normal(features) / math.sqrt(2 * m)


def target_stats(values: Any, batches: int = 20) -> dict[str, float]:
    """`loss.targets` (or `loss.outputs`) as `_merge_stats` keeps them over the batches seen."""
    v = np.asarray(values, dtype=float)
    return {
        "min": float(v.min()),
        "max": float(v.max()),
        "mean": float(v.mean()),
        "sqmean": float(np.mean(v * v)),
        "n": float(batches),
        "var": float(np.var(v)),
    }


def classification_loss(
    n_classes: int = 3,
    *,
    first_loss: float | None = None,
    label_counts: Any = None,
    mismatch: dict | None = None,
    fn: str = "cross_entropy",
) -> dict[str, Any]:
    """The `loss` section of a classifier: an untrained one starts a little under ln C."""
    out: dict[str, Any] = {
        "loss_function": fn,
        "n_classes": n_classes,
        "first_loss": first_loss if first_loss is not None else 0.97 * math.log(n_classes),
        "chance_loss": math.log(n_classes),
    }
    if mismatch is not None:
        out["input_mismatch"] = mismatch
    counts = label_counts if label_counts is not None else [150 + 10 * i for i in range(n_classes)]
    out["label_counts"] = [int(c) for c in counts]
    return out


def regression_loss(
    targets: Any,
    outputs: Any = None,
    *,
    fn: str = "mse_loss",
    first_loss: float | None = None,
    reduction: str | None = "mean",
) -> dict[str, Any]:
    """The `loss` section of a regression: no class count, target (and output) statistics, and for
    `mse_loss` the reduction the recorder read from its value."""
    t = np.asarray(targets, dtype=float)
    out: dict[str, Any] = {
        "loss_function": fn,
        **({"reduction": reduction} if fn == "mse_loss" and reduction else {}),
        "n_classes": None,
        "first_loss": first_loss if first_loss is not None else float(np.mean(t * t)),
        "targets": target_stats(t),
    }
    if outputs is not None:
        out["outputs"] = target_stats(outputs)
    return out


def loader(
    dataset_size: int,
    batch_size: int,
    *,
    shuffle: bool = True,
    training: bool = True,
    epochs: int = 3,
    drop_last: bool = False,
) -> dict[str, Any]:
    """One DataLoader as `loader_facts` describes it, iterated `epochs` times."""
    batches = dataset_size // batch_size if drop_last else math.ceil(dataset_size / batch_size)
    return {
        "dataset": "TensorDataset",
        "dataset_size": dataset_size,
        "batch_size": batch_size,
        "batches_per_epoch": batches,
        "sampler": "RandomSampler" if shuffle else "SequentialSampler",
        "shuffle": shuffle,
        "drop_last": drop_last,
        "iterations": epochs,
        "training_iterations": epochs if training else 0,
    }


def data_loader_section(train: dict, *others: dict) -> dict[str, Any]:
    return {"loaders": [train, *others], "train": train}


def clip_summary(ratios: Any, limit: float = 1.0, kind: str = "norm") -> dict[str, Any]:
    """`clipping` from the pre-clip gradient size / limit of each measured call."""
    r = np.asarray(ratios, dtype=float)
    return {
        "calls": len(r),
        "kind": kind,
        "limit": limit,
        "measured_calls": len(r),
        "bite_share": float(np.mean(r > 1.0)),
        "median_pre_clip_ratio": _lower_median(r),
        "p90_pre_clip_ratio": float(np.quantile(r, 0.9)),
    }


#: the recorder fingerprints this many consecutive training batches first (fingerprints.EARLY_BATCHES)
EARLY_FINGERPRINTS = 16


def fingerprint_summary(batch_ids: Any, batch_size: int = 32) -> dict[str, Any]:
    """`inputs.fingerprints` from the identity of each fingerprinted batch (equal ids: the
    same batch fed again), the first EARLY_FINGERPRINTS of them consecutive training batches."""
    ids = list(batch_ids)
    out: dict[str, Any] = {
        "sampled_batches": len(ids),
        "distinct": len(set(ids)),
        "most_common_share": max(Counter(ids).values()) / len(ids),
    }
    early = ids[:EARLY_FINGERPRINTS]
    if len(early) >= 2:
        out["consecutive_repeats"] = sum(a == b for a, b in zip(early, early[1:])) / (len(early) - 1)
    for k in range(2, len(early) // 2 + 1):
        if len(set(early[:k])) == k and all(early[i] == early[i - k] for i in range(k, len(early))):
            out["cycle_batches"], out["cycle_samples"] = k, k * batch_size
            break
    return out


def healthy_diagnostics(**sections: Any) -> dict[str, Any]:
    """What the recorder wrote for a healthy 8-32-16-3 MLP classifier (ReLU, dropout 0.1, Tanh),
    SGD lr 0.1 momentum 0.9, 512 samples in shuffled batches of 32, 600 steps. Keyword
    arguments replace whole sections (`model=...`, `loss=...`); a section given as None is
    left out, as when its probe saw nothing."""
    model = mlp_model([8, 32, 16, 3], dropout=0.1)
    mean, std = standardised_features(8, seed=0, batches=60)
    emean, estd = standardised_features(8, seed=1, batches=2, batch_size=64)
    diag: dict[str, Any] = {
        "recorder_version": "0.1.0",
        "steps": N,
        "optimizer": optimizer_facts(),
        "model": model,
        "activations": {"layers": {"1": "relu", "4": "relu"}},
        "data_loader": data_loader_section(loader(512, 32), loader(128, 64, shuffle=False, training=False)),
        "loss": classification_loss(3, label_counts=[1930, 2110, 1960]),
        "inputs": {
            "train": input_stats(mean, std, batches=60),
            "eval": input_stats(emean, estd, batches=6, batch_size=64),
            "fingerprints": fingerprint_summary(range(68)),
        },
    }
    for name, value in sections.items():
        if value is None:
            diag.pop(name, None)
        else:
            diag[name] = value
    return diag


@pytest.fixture(autouse=True)
def _reset_autolog_config():
    """Overrides tests/conftest.py's fixture of this name: rule tests never switch the recorder
    on, and need not import MLflow (~4 s) to switch it off again."""
    yield
