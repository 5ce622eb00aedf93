"""What the corpus holds: one `RunSpec` per training run, enumerated deterministically.

Three kinds of run:

- `sweep`: a learning-rate sweep over 1e-6 .. 10 (eight values, seven orders of magnitude) for
  every family, style and optimiser listed in `SWEEPS`. Its truth is decided from its outcome
  after the sweep has run (see `generate.py: sweep_label`), never from the learning rate alone.
- `fault`: a sound setup (the family's default optimiser and learning rate) with one injected
  fault at one of its severities; its truth is the injected cause.
- `imperfect`: the ordinary healthy runs teams have by the hundred (early stopping, warm-up
  fine-tuning, small noisy batches, short runs, runs still improving, full-batch runs, ...);
  truth `healthy` unless its outcome says otherwise (`generate.py: imperfect_label`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

FAMILIES = ("mlp", "cnn", "rnn", "bert")

#: learning rates of a sweep: 1e-6 .. 10
SWEEP_LRS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: the small corpus sweeps 1e-5 .. 10 (six orders of magnitude)
SMALL_SWEEP_LRS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)

#: (family, style, optimizer) of each learning-rate sweep
SWEEPS: tuple[tuple[str, str, str], ...] = (
    ("mlp", "plain", "sgd"),
    ("mlp", "plain", "momentum"),
    ("mlp", "plain", "adam"),
    ("mlp", "plain", "adamw"),
    ("mlp", "plain", "lbfgs"),
    ("mlp", "lightning", "sgd"),
    ("mlp", "lightning", "adam"),
    ("mlp", "hf", "adamw"),
    ("cnn", "plain", "sgd"),
    ("cnn", "plain", "momentum"),
    ("cnn", "plain", "adam"),
    ("cnn", "lightning", "adamw"),
    ("rnn", "plain", "sgd"),
    ("rnn", "plain", "momentum"),
    ("rnn", "plain", "adam"),
    ("rnn", "plain", "lbfgs"),
    ("rnn", "lightning", "adam"),
    ("bert", "plain", "sgd"),
    ("bert", "plain", "adamw"),
    ("bert", "hf", "adamw"),
)
#: one sweep per family in the small corpus
SMALL_SWEEPS = (
    ("mlp", "plain", "momentum"),
    ("cnn", "lightning", "adamw"),
    ("rnn", "plain", "adam"),
    ("bert", "hf", "adamw"),
)

#: the family's sound default (optimizer, lr), used by fault and imperfect runs
DEFAULTS = {"mlp": ("adam", 1e-3), "cnn": ("adam", 2e-3), "rnn": ("adam", 3e-3), "bert": ("adamw", 1e-3)}

#: fault -> (truth cause, families it applies to, severities: each a dict of knobs)
FAULTS: dict[str, tuple[str, tuple[str, ...], tuple[dict, ...]]] = {
    "softmax_into_ce": ("loss_input_mismatch", FAMILIES, ({"softmax_head": True},)),
    "labels_shuffled": ("labels_unrelated", FAMILIES, ({"label_noise": 0.8}, {"label_noise": 1.0})),
    "imbalance": ("class_imbalance", FAMILIES, ({"majority_share": 0.9}, {"majority_share": 0.97})),
    "sorted_by_label": ("data_not_shuffled", FAMILIES, ({"sort_by_label": True},)),
    "same_batch": ("repeated_batch", FAMILIES, ({"same_batch": True},)),
    "nan_inputs": ("nonfinite_inputs", ("mlp", "cnn", "rnn"), ({"nan_rows": 0.01}, {"nan_rows": 0.1})),
    "raw_inputs": (
        "inputs_not_normalized",
        ("mlp", "cnn", "rnn"),
        ({"x_scale": 20.0, "x_shift": 50.0}, {"x_scale": 60.0, "x_shift": 120.0}),
    ),
    "val_unnormalized": (
        "train_val_preprocessing_mismatch",
        ("mlp", "cnn", "rnn"),
        ({"val_scale": 3.0, "val_shift": 1.0}, {"val_scale": 5.0, "val_shift": 3.0}),
    ),
    "head_frozen": ("frozen_parameters", FAMILIES, ({"frozen_head": True},)),
    "no_zero_grad": ("gradients_not_zeroed", FAMILIES, ({"no_zero_grad": True},)),
    "eval_in_train_mode": (
        "eval_mode_not_set",
        ("mlp", "cnn"),
        ({"dropout": 0.3, "no_eval": True}, {"dropout": 0.5, "no_eval": True}),
    ),
    "negative_bias": ("dead_relu", ("mlp", "cnn"), ({"neg_bias": -3.0}, {"neg_bias": -6.0})),
    "tanh_big_init": ("saturated_activations", ("mlp",), ({"tanh_scale": 10.0}, {"tanh_scale": 20.0})),
    "huge_output_init": ("initial_loss_mismatch", FAMILIES, ({"head_scale": 10.0}, {"head_scale": 40.0})),
    "heavy_dropout": ("too_much_regularization", ("mlp",), ({"dropout": 0.8}, {"dropout": 0.9})),
    "clipping_high_lr": (
        "gradient_clipping_masks_lr",
        ("mlp", "cnn"),
        ({"optimizer": "sgd", "lr": 1.0, "clip_norm": 0.05}, {"optimizer": "sgd", "lr": 3.0, "clip_norm": 0.01}),
    ),
    "fast_decay": ("lr_decay_too_fast", FAMILIES, ({"gamma": 0.5}, {"gamma": 0.3})),
    "lr_grows": ("learning_rate_too_high", FAMILIES, ({"lr_growth": 1.02}, {"lr_growth": 1.05})),
    "zero_init": ("bad_weight_init", ("mlp",), ({"zero_init": True, "optimizer": "momentum", "lr": 1e-2},)),
}
#: the small corpus: one fault per family, the strongest severity
SMALL_FAULTS = {
    "mlp": ("softmax_into_ce", "lr_grows", "labels_shuffled"),
    "cnn": ("negative_bias", "imbalance"),
    "rnn": ("same_batch", "fast_decay"),
    "bert": ("head_frozen", "no_zero_grad"),
}

#: imperfect healthy run kinds -> (families, knobs)
IMPERFECT: dict[str, tuple[tuple[str, ...], dict]] = {
    "early_stopping": (FAMILIES, {"epochs": 30, "patience": 2}),
    "warmup_finetune": (FAMILIES, {"optimizer": "adamw", "warmup": 0.2, "cosine": True, "weight_decay": 0.01}),
    "noisy_small_batch": (("mlp", "cnn", "rnn"), {"batch_size": 4, "epochs": 2}),
    "short_run": (FAMILIES, {"epochs": 2}),
    "still_improving": (("mlp", "cnn", "rnn"), {"optimizer": "momentum", "lr": 3e-3, "epochs": 6}),
    "full_batch_adam": (("mlp", "rnn"), {"batch_size": 0, "epochs": 60, "lr": 1e-2}),
    "full_batch_lbfgs": (("mlp", "rnn"), {"optimizer": "lbfgs", "lr": 1.0, "epochs": 25, "line_search": True}),
    "mild_label_noise": (FAMILIES, {"label_noise": 0.1}),
    "adadelta_steplr": (("mlp", "cnn"), {"optimizer": "adadelta", "lr": 1.0, "step_lr": (3, 0.7)}),
    "lightning_default": (("mlp", "cnn", "rnn"), {"style": "lightning"}),
    "hf_default": (("mlp", "bert"), {"style": "hf", "optimizer": "adamw"}),
}
SMALL_IMPERFECT = {
    "mlp": ("early_stopping", "full_batch_lbfgs"),
    "cnn": ("short_run",),
    "rnn": ("noisy_small_batch",),
    "bert": ("warmup_finetune",),
}


@dataclass
class RunSpec:
    """One training run of the corpus. `key` is its stable identity (the split hashes it)."""

    kind: str  # sweep | fault | imperfect
    family: str
    style: str  # plain | lightning | hf
    optimizer: str
    lr: float
    seed: int
    fault: str = ""  # fault or imperfect kind
    severity: int = 0  # 1, 2, ... for faults
    truth: str = ""  # the injected cause, `healthy`, or empty for a sweep (decided from its outcome)
    knobs: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        parts = [self.kind, self.family, self.style, self.optimizer, f"{self.lr:g}", f"s{self.seed}"]
        if self.fault:
            parts.append(self.fault + (f"{self.severity}" if self.severity else ""))
        return "/".join(parts)

    @property
    def group(self) -> str:
        """The sweep a run belongs to (its siblings share it): family/style/optimizer/seed."""
        return f"{self.family}/{self.style}/{self.optimizer}/s{self.seed}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def key_hash(key: str) -> int:
    return int(hashlib.blake2b(key.encode(), digest_size=8).hexdigest(), 16)


def enumerate_specs(size: str, seeds: tuple[int, ...] | None = None) -> list[RunSpec]:
    """Every run of the corpus of this size ('small' or 'full') and these seeds (default: 0 and 1 for
    full, 0 for small), in a fixed order."""
    small = size == "small"
    if seeds is None:
        seeds = (0,) if small else (0, 1)
    out: list[RunSpec] = []
    for seed in seeds:
        for family, style, opt in SMALL_SWEEPS if small else SWEEPS:
            for lr in SMALL_SWEEP_LRS if small else SWEEP_LRS:
                out.append(RunSpec("sweep", family, style, opt, lr, seed))
        for fault, (truth, families, severities) in FAULTS.items():
            for family in families:
                if small and fault not in SMALL_FAULTS[family]:
                    continue
                chosen = severities[-1:] if small else severities
                for sev, knobs in enumerate(chosen, len(severities) - len(chosen) + 1):
                    opt, lr = DEFAULTS[family]
                    out.append(
                        RunSpec(
                            "fault",
                            family,
                            knobs.get("style", "plain"),
                            knobs.get("optimizer", opt),
                            knobs.get("lr", lr),
                            seed,
                            fault,
                            sev if len(severities) > 1 else 0,
                            truth,
                            dict(knobs),
                        )
                    )
        for kind, (families, knobs) in IMPERFECT.items():
            for family in families:
                if small and kind not in SMALL_IMPERFECT.get(family, ()):
                    continue
                opt, lr = DEFAULTS[family]
                out.append(
                    RunSpec(
                        "imperfect",
                        family,
                        knobs.get("style", "plain"),
                        knobs.get("optimizer", opt),
                        knobs.get("lr", lr),
                        seed,
                        kind,
                        0,
                        "healthy",
                        dict(knobs),
                    )
                )
    # the slowest runs first (Lightning and the Trainer, ~20 s each on a loaded 16-core machine; then bert),
    # so that parallel workers do not wait on a tail of slow runs at the end
    order = {"bert": 0, "rnn": 1, "cnn": 2, "mlp": 3}
    out.sort(key=lambda s: (s.style == "plain", order[s.family], key_hash(s.key)))
    return out
