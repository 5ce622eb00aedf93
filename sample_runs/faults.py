"""Small real training runs, each with one injected fault (or none), for the demo, the
integration tests and the detection benchmark.

Everything trains on synthetic data made here (nothing is downloaded) with tiny models on the
CPU. Each run is tagged `sample.name` and `sample.expected_causes` (comma-separated cause ids;
empty for a healthy run), and `sample.expected_advisories` (set-up risks injected into a run that
still trains well: the audit should list them as advisories and call the run healthy). Some runs use the recorder (`mlflow_nnaudit.autolog()`); others log
their curves by hand under common names, the way runs without the recorder look.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import mlflow
import torch
from torch import nn

import mlflow_nnaudit

N_FEATURES = 20
N_CLASSES = 4


@dataclass
class Sample:
    """One sample run: its name, the causes it was built to show, and how to train it."""

    name: str
    expected: tuple[str, ...]
    description: str
    train: Callable[[Sample], None]
    recorder: bool = True  # False: curves logged by hand, no recorder
    params: dict = field(default_factory=dict)
    #: set-up risks injected into a run that still trains well: the audit should report them as
    #: advisories and leave the run `healthy` (status follows harm); `expected` is then empty
    advisories: tuple[str, ...] = ()


# --- data ---------------------------------------------------------------------------------------
def teacher_classification(n_train: int, n_val: int, seed: int, label_noise: float = 0.0):
    """Inputs ~ N(0, 1); labels from a fixed random 'teacher' network, so a student can learn them."""
    g = torch.Generator().manual_seed(1234)  # the task is the same for every run
    w1 = torch.randn(N_FEATURES, 32, generator=g)
    w2 = torch.randn(32, N_CLASSES, generator=g)
    gd = torch.Generator().manual_seed(seed)

    def make(n):
        x = torch.randn(n, N_FEATURES, generator=gd)
        y = (torch.tanh(x @ w1) @ w2).argmax(dim=1)
        if label_noise > 0:
            flip = torch.rand(n, generator=gd) < label_noise
            y = torch.where(flip, torch.randint(0, N_CLASSES, (n,), generator=gd), y)
        return x, y

    return make(n_train), make(n_val)


def teacher_regression(n_train: int, n_val: int, seed: int, target_scale: float = 1.0):
    g = torch.Generator().manual_seed(4321)
    w = torch.randn(N_FEATURES, 1, generator=g) / math.sqrt(N_FEATURES)
    gd = torch.Generator().manual_seed(seed)

    def make(n):
        x = torch.randn(n, N_FEATURES, generator=gd)
        y = (torch.sin(2 * x @ w) + 0.5 * (x @ w)) * target_scale + 0.05 * torch.randn(n, 1, generator=gd)
        return x, y

    return make(n_train), make(n_val)


def mlp(widths: list[int], act: type[nn.Module] = nn.ReLU, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(act())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


# --- one training loop, with hooks for the faults ----------------------------------------------
def fit(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    data,
    loss_fn: nn.Module,
    epochs: int,
    batch_size: int,
    seed: int,
    scheduler=None,
    lr_growth: float | None = None,
    log_by_hand: bool = False,
    metric_names: tuple[str, str] = ("train_loss", "val_loss"),
    shuffle: bool = True,
    eval_mode: bool = True,
    zero_grad: bool = True,
    step_scheduler=None,
    log_grad_norm: bool = False,
) -> None:
    """A plain PyTorch loop. With the recorder on, nothing is logged by hand (the recorder
    captures the training loss and the evaluation loss); without it, both are logged per
    epoch under `metric_names`, like a run that never had the recorder. `log_grad_norm` logs
    the gradient norm of every step as `grad_norm`, the way the HF Trainer does."""
    (xt, yt), (xv, yv) = data
    g = torch.Generator().manual_seed(seed)
    step = 0
    n = len(xt)
    grad_norms = []
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
        epoch_loss, batches = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            if zero_grad:
                opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            if log_grad_norm:
                with torch.no_grad():
                    grad_norms.append(
                        float(
                            torch.linalg.vector_norm(
                                torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])
                            )
                        )
                    )
            opt.step()
            if step_scheduler is not None:
                step_scheduler.step()
            if lr_growth is not None:
                for group in opt.param_groups:
                    group["lr"] *= lr_growth
            epoch_loss += float(loss.detach())
            batches += 1
            step += 1
        if scheduler is not None:
            scheduler.step()
        if eval_mode:
            model.eval()
        with torch.no_grad():
            val = float(loss_fn(model(xv), yv))
        if log_by_hand:
            mlflow.log_metrics({metric_names[0]: epoch_loss / batches, metric_names[1]: val}, step=epoch)
    if grad_norms:
        log_series("grad_norm", grad_norms)


def log_series(key: str, values: list[float], steps: list[int] | None = None) -> None:
    """Log a whole curve in one call (a per-step log_metric would dominate these tiny runs)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    steps = steps if steps is not None else list(range(len(values)))
    metrics = [Metric(key, float(v), now, int(s)) for s, v in zip(steps, values)]
    run_id = mlflow.active_run().info.run_id
    for i in range(0, len(metrics), 1000):
        MlflowClient().log_batch(run_id, metrics=metrics[i : i + 1000])


def fit_loader(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    data,
    loss_fn: nn.Module,
    epochs: int,
    batch_size: int,
    seed: int,
    scheduler=None,
    clip_norm: float | None = None,
    same_batch: bool = False,
    log_lr: bool = False,
) -> None:
    """The same loop over `torch.utils.data.DataLoader`s, for the faults that live in how data is
    loaded or steps are taken. `same_batch`: the bug of taking `next(iter(loader))` every step
    (an unshuffled loader restarts, so it is always the first batch). `log_lr`: log the learning
    rate per epoch as `lr`, as Lightning's LearningRateMonitor does."""
    (xt, yt), (xv, yv) = data
    g = torch.Generator().manual_seed(seed)
    train = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xt, yt), batch_size=batch_size, shuffle=not same_batch, generator=g
    )
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), batch_size=500)
    lrs = []
    for _ in range(epochs):
        model.train()
        lrs.append(opt.param_groups[0]["lr"])
        for x, y in train:
            if same_batch:
                x, y = next(iter(train))
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            opt.step()
        if scheduler is not None:
            scheduler.step()
        model.eval()
        with torch.no_grad():
            for x, y in val:
                loss_fn(model(x), y)
    if log_lr:  # at the optimizer step each epoch starts, as Lightning's LearningRateMonitor does
        log_series("lr", lrs, [i * len(train) for i in range(len(lrs))])


# --- the samples ---------------------------------------------------------------------------------
def _classifier_run(
    sample: Sample,
    *,
    lr: float,
    opt: str = "adam",
    epochs: int = 25,
    n_train: int = 2000,
    widths: list[int] | None = None,
    label_noise: float = 0.0,
    batch_size: int = 64,
    init: Callable[[nn.Module], None] | None = None,
    lr_growth: float | None = None,
    momentum: float = 0.0,
    log_by_hand: bool = False,
    metric_names: tuple[str, str] = ("train_loss", "val_loss"),
    head: nn.Module | None = None,
    sort_by_label: bool = False,
    majority_share: float | None = None,
    dropout: float = 0.0,
    eval_mode: bool = True,
    train_head: bool = True,
    x_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    val_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    model: nn.Module | None = None,
    zero_grad: bool = True,
    log_grad_norm: bool = False,
) -> None:
    seed = 7
    torch.manual_seed(seed)
    data = teacher_classification(n_train, 1000, seed, label_noise)
    if x_transform is not None or val_transform is not None:
        (xt, yt), (xv, yv) = data
        xt = x_transform(xt) if x_transform else xt
        xv = (val_transform or x_transform)(xv)
        data = ((xt, yt), (xv, yv))
    if majority_share is not None:
        data = (imbalance(*data[0], majority_share, seed), data[1])
    if sort_by_label:
        order = torch.argsort(data[0][1], stable=True)
        data = ((data[0][0][order], data[0][1][order]), data[1])
    model = model if model is not None else mlp(widths or [N_FEATURES, 64, 64, N_CLASSES], dropout=dropout)
    if init is not None:
        model.apply(init)
    if head is not None:
        model.append(head)
    params = model.parameters() if train_head else model[:-1].parameters()
    if opt == "adam":
        optimizer = torch.optim.Adam(params, lr=lr)
    else:
        optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum)
    mlflow.log_params(
        {
            "lr": lr,
            "optimizer": opt,
            "epochs": epochs,
            "batch_size": batch_size,
            "n_train": n_train,
            "n_classes": N_CLASSES,
            **({"dropout": dropout} if dropout else {}),
        }
    )
    fit(
        model,
        optimizer,
        data,
        nn.CrossEntropyLoss(),
        epochs,
        batch_size,
        seed,
        lr_growth=lr_growth,
        log_by_hand=log_by_hand,
        metric_names=metric_names,
        shuffle=not sort_by_label,
        eval_mode=eval_mode,
        zero_grad=zero_grad,
        log_grad_norm=log_grad_norm,
    )


def imbalance(x: torch.Tensor, y: torch.Tensor, majority_share: float, seed: int):
    """Keep every sample of class 0 and just enough of the others for class 0 to make up
    `majority_share` of the data."""
    g = torch.Generator().manual_seed(seed)
    major = torch.nonzero(y == 0).flatten()
    minor = torch.nonzero(y != 0).flatten()
    keep = int(len(major) * (1 - majority_share) / majority_share)
    minor = minor[torch.randperm(len(minor), generator=g)[:keep]]
    idx = torch.cat([major, minor])[torch.randperm(len(major) + keep, generator=g)]
    return x[idx], y[idx]


def _zero_init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.zeros_(m.weight)
        nn.init.zeros_(m.bias)


def healthy_adam(s: Sample) -> None:
    _classifier_run(s, lr=1e-3, epochs=12, n_train=8000)


def healthy_sgd_steplr_regression(s: Sample) -> None:
    seed = 11
    torch.manual_seed(seed)
    data = teacher_regression(2000, 1000, seed)
    model = mlp([N_FEATURES, 64, 64, 1], act=nn.Tanh)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.3)
    mlflow.log_params({"lr": 0.05, "optimizer": "sgd", "momentum": 0.9, "schedule": "StepLR(10, 0.3)"})
    fit(model, opt, data, nn.MSELoss(), 30, 32, seed, scheduler=sched)


def healthy_by_hand(s: Sample) -> None:
    """A healthy run logged Keras-style (`loss`/`val_loss` per epoch), no recorder."""
    _classifier_run(s, lr=2e-3, epochs=15, n_train=8000, log_by_hand=True, metric_names=("loss", "val_loss"))


def healthy_adamw_warmup_cosine(s: Sample) -> None:
    """AdamW with weight decay, a linear warm-up then cosine decay, dropout 0.1."""
    seed = 13
    torch.manual_seed(seed)
    data = teacher_classification(8000, 1000, seed)
    model = mlp([N_FEATURES, 128, 128, N_CLASSES], dropout=0.1)
    epochs, batch = 10, 64
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    total = epochs * (8000 // batch + 1)
    warm = total // 10
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: (i + 1) / warm if i < warm else 0.5 * (1 + math.cos(math.pi * (i - warm) / (total - warm)))
    )
    mlflow.log_params({"lr": 2e-3, "optimizer": "adamw", "schedule": "warmup+cosine"})
    fit(model, opt, data, nn.CrossEntropyLoss(), epochs, batch, seed, step_scheduler=sched)


def healthy_noisy_small_batch_regression(s: Sample) -> None:
    """Regression with batches of 8: a very noisy per-step loss that still converges."""
    seed = 17
    torch.manual_seed(seed)
    data = teacher_regression(2000, 500, seed)
    model = mlp([N_FEATURES, 32, 1])
    mlflow.log_params({"lr": 3e-3, "optimizer": "adam", "batch_size": 8})
    fit(model, torch.optim.Adam(model.parameters(), lr=3e-3), data, nn.MSELoss(), 20, 8, seed)


def nan_lr_huge(s: Sample) -> None:
    """Plain SGD with lr=2 on a regression: the loss blows up within a few steps, then NaN."""
    seed = 3
    torch.manual_seed(seed)
    data = teacher_regression(2000, 500, seed)
    model = mlp([N_FEATURES, 64, 64, 1])
    mlflow.log_params({"lr": 2.0, "optimizer": "sgd", "epochs": 3})
    fit(model, torch.optim.SGD(model.parameters(), lr=2.0), data, nn.MSELoss(), 3, 64, seed)


def diverging_lr_warmup_bug(s: Sample) -> None:
    """A warm-up that never stops: the learning rate grows 2% every step."""
    _classifier_run(s, lr=2e-4, epochs=12, lr_growth=1.02)


def lr_too_low(s: Sample) -> None:
    _classifier_run(s, lr=2e-4, opt="sgd", epochs=25)


def not_converged(s: Sample) -> None:
    """A sound setup (Adam 1e-3) stopped after 2 epochs, while the loss is still falling fast."""
    _classifier_run(s, lr=1e-3, epochs=2, n_train=4000)


def overfitting_small_data(s: Sample) -> None:
    """64 noisy training samples, a wide network, many epochs; curves logged by hand."""
    _classifier_run(
        s,
        lr=1e-3,
        epochs=150,
        n_train=64,
        widths=[N_FEATURES, 256, 256, N_CLASSES],
        label_noise=0.2,
        batch_size=16,
        log_by_hand=True,
    )


def plateau_zero_init(s: Sample) -> None:
    """Every weight initialised to zero: ReLU units are all dead, nothing can learn."""
    _classifier_run(s, lr=1e-2, opt="sgd", momentum=0.9, epochs=20, init=_zero_init)


def _scale_last_layer(factor: float) -> Callable[[nn.Module], None]:
    def init(model: nn.Module) -> None:
        if isinstance(model, nn.Sequential):
            with torch.no_grad():
                model[-1].weight.mul_(factor)

    return init


def softmax_before_cross_entropy(s: Sample) -> None:
    """The model ends in Softmax and its output goes into nn.CrossEntropyLoss."""
    _classifier_run(s, lr=1e-3, epochs=10, n_train=4000, head=nn.Softmax(dim=1))


def sorted_by_label(s: Sample) -> None:
    """The training data is sorted by label and never shuffled."""
    _classifier_run(s, lr=1e-3, epochs=10, n_train=4000, sort_by_label=True)


def imbalanced_labels(s: Sample) -> None:
    """Class 0 makes up 95% of the training data."""
    _classifier_run(s, lr=1e-3, epochs=10, n_train=8000, majority_share=0.95)


def eval_in_train_mode(s: Sample) -> None:
    """Dropout 0.5, and the validation loop never calls model.eval()."""
    _classifier_run(s, lr=1e-3, epochs=10, n_train=4000, dropout=0.5, eval_mode=False)


def huge_init(s: Sample) -> None:
    """The output layer's weights are scaled up 40x at init: logits start huge."""
    _classifier_run(s, lr=1e-3, epochs=10, n_train=4000, init=_scale_last_layer(40.0))


def head_not_in_optimizer(s: Sample) -> None:
    """The optimizer is built from every layer but the output layer."""
    _classifier_run(s, lr=1e-3, epochs=10, n_train=4000, train_head=False)


def _regression_run(
    s: Sample, *, target_scale: float = 1.0, head: nn.Module | None = None, lr: float = 1e-3, epochs: int = 10
) -> None:
    seed = 5
    torch.manual_seed(seed)
    data = teacher_regression(2000, 500, seed, target_scale=target_scale)
    model = mlp([N_FEATURES, 64, 64, 1])
    if head is not None:
        model.append(head)
    mlflow.log_params({"lr": lr, "optimizer": "adam", "epochs": epochs})
    fit(model, torch.optim.Adam(model.parameters(), lr=lr), data, nn.MSELoss(), epochs, 32, seed)


def unscaled_targets(s: Sample) -> None:
    """Regression targets in the thousands, never standardised."""
    _regression_run(s, target_scale=1000.0)


def relu_output_regression(s: Sample) -> None:
    """A regression model ending in ReLU while half of the targets are negative."""
    _regression_run(s, head=nn.ReLU())


def heavy_dropout(s: Sample) -> None:
    """Dropout 0.9 after every hidden layer: the network can barely fit anything."""
    _classifier_run(s, lr=1e-3, epochs=8, n_train=4000, dropout=0.9)


def shuffled_labels(s: Sample) -> None:
    """Training labels shuffled against their inputs (a broken join): nothing to learn but noise."""
    _classifier_run(
        s, lr=1e-3, epochs=40, n_train=256, widths=[N_FEATURES, 256, 256, N_CLASSES], batch_size=32, label_noise=1.0
    )


def raw_scale_inputs(s: Sample) -> None:
    """Inputs on a raw 0..255-like scale (x * 60 + 120), never standardised."""
    _classifier_run(s, lr=1e-3, epochs=6, n_train=4000, x_transform=lambda x: x * 60 + 120)


def nan_in_inputs(s: Sample) -> None:
    """A few input values are NaN (a broken preprocessing step)."""

    def poison(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[::50, 3] = float("nan")
        return x

    _classifier_run(s, lr=1e-3, epochs=3, n_train=4000, x_transform=poison)


def constant_feature_columns(s: Sample) -> None:
    """Four input columns hold the same value in every sample."""

    def flatten(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[:, -4:] = 1.0
        return x

    _classifier_run(s, lr=1e-3, epochs=8, n_train=4000, x_transform=flatten)


def val_not_normalized(s: Sample) -> None:
    """Training inputs standardised; validation inputs left on their raw scale (x * 5 + 3)."""
    _classifier_run(s, lr=1e-3, epochs=8, n_train=4000, val_transform=lambda x: x * 5 + 3)


def _negative_bias(model: nn.Module) -> None:
    if isinstance(model, nn.Linear) and model.out_features != N_CLASSES:
        nn.init.constant_(model.bias, -6.0)


def dead_relu_negative_bias(s: Sample) -> None:
    """Hidden biases initialised to -6: most ReLU units never fire."""
    _classifier_run(s, lr=1e-3, epochs=8, n_train=4000, init=_negative_bias)


def saturated_tanh(s: Sample) -> None:
    """A tanh network whose weights start 20x too large: most of its units sit on the rails."""
    model = mlp([N_FEATURES, 64, 64, N_CLASSES], act=nn.Tanh)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(20.0)
    _classifier_run(s, lr=1e-3, epochs=8, n_train=4000, model=model)


def batchnorm_tiny_batches(s: Sample) -> None:
    """BatchNorm after each hidden layer, trained with batches of 2."""
    model = nn.Sequential(
        nn.Linear(N_FEATURES, 64),
        nn.BatchNorm1d(64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.BatchNorm1d(64),
        nn.ReLU(),
        nn.Linear(64, N_CLASSES),
    )
    _classifier_run(s, lr=1e-3, epochs=2, n_train=600, batch_size=2, model=model)


def gradients_never_zeroed(s: Sample) -> None:
    """The loop never calls optimizer.zero_grad(): gradients pile up."""
    _classifier_run(s, lr=0.01, opt="sgd", epochs=8, n_train=4000, zero_grad=False, log_grad_norm=True)


def no_bias_layers(s: Sample) -> None:
    """Every Linear layer created with bias=False, no normalisation."""
    model = nn.Sequential(
        nn.Linear(N_FEATURES, 64, bias=False),
        nn.ReLU(),
        nn.Linear(64, 64, bias=False),
        nn.ReLU(),
        nn.Linear(64, N_CLASSES, bias=False),
    )
    _classifier_run(s, lr=1e-3, epochs=8, n_train=4000, model=model)


def _loader_classifier(
    s: Sample,
    *,
    lr: float = 1e-3,
    epochs: int = 8,
    n_train: int = 4000,
    batch_size: int = 64,
    widths: list[int] | None = None,
    opt: str = "adam",
    momentum: float = 0.0,
    label_noise: float = 0.0,
    gamma: float | None = None,
    log_lr: bool = False,
    **kw,
) -> None:
    """A classifier trained through DataLoaders (see `fit_loader`)."""
    seed = 19
    torch.manual_seed(seed)
    data = teacher_classification(n_train, 1000, seed, label_noise)
    model = mlp(widths or [N_FEATURES, 64, 64, N_CLASSES])
    optimizer = (
        torch.optim.Adam(model.parameters(), lr=lr)
        if opt == "adam"
        else torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    )
    sched = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma) if gamma else None
    mlflow.log_params(
        {
            "lr": lr,
            "optimizer": opt,
            "epochs": epochs,
            "batch_size": batch_size,
            "n_train": n_train,
            "n_classes": N_CLASSES,
            **({"lr_gamma_per_epoch": gamma} if gamma else {}),
        }
    )
    fit_loader(
        model, optimizer, data, nn.CrossEntropyLoss(), epochs, batch_size, seed, scheduler=sched, log_lr=log_lr, **kw
    )


def same_batch_every_step(s: Sample) -> None:
    """The loop calls `next(iter(loader))` every step on an unshuffled loader: always the first batch."""
    _loader_classifier(s, epochs=4, n_train=2000, same_batch=True)


def huge_batches(s: Sample) -> None:
    """Batches of 1,000 out of 4,000 samples: 4 updates per epoch."""
    _loader_classifier(s, epochs=10, batch_size=1000)


def tiny_dataset(s: Sample) -> None:
    """96 training samples (10% label noise) for a 70k-parameter network, 60 epochs."""
    _loader_classifier(
        s, epochs=60, n_train=96, batch_size=16, widths=[N_FEATURES, 256, 256, N_CLASSES], label_noise=0.1
    )


def clipping_hides_high_lr(s: Sample) -> None:
    """SGD with lr=1 (far too high), kept from diverging by clip_grad_norm_(max_norm=0.05) on every step."""
    _loader_classifier(s, lr=1.0, opt="sgd", epochs=5, clip_norm=0.05)


def lr_decays_in_two_epochs(s: Sample) -> None:
    """Adam 1e-3 with ExponentialLR(gamma=0.3) per epoch: the rate is ~10x lower after 2 of 12 epochs."""
    _loader_classifier(s, epochs=12, gamma=0.3, log_lr=True)


def deep_plain_mlp(s: Sample) -> None:
    """A plain 14-layer ReLU MLP (no normalisation, no residuals, default init)."""
    _loader_classifier(
        s, lr=0.05, opt="sgd", momentum=0.9, epochs=6, n_train=2000, widths=[N_FEATURES] + [32] * 13 + [N_CLASSES]
    )


def bottleneck_mlp(s: Sample) -> None:
    """A hidden layer of 1 unit for 4 classes: the model cannot fit the task."""
    _loader_classifier(s, lr=3e-3, epochs=10, widths=[N_FEATURES, 1, N_CLASSES])


SAMPLES: tuple[Sample, ...] = (
    Sample("healthy_adam_mlp", (), "Adam 1e-3 on a learnable classification task", healthy_adam),
    Sample(
        "healthy_sgd_steplr_regression",
        (),
        "SGD+momentum with a StepLR schedule, regression",
        healthy_sgd_steplr_regression,
    ),
    Sample(
        "healthy_logged_by_hand",
        (),
        "healthy classifier, curves logged by hand (no recorder)",
        healthy_by_hand,
        recorder=False,
    ),
    Sample(
        "healthy_adamw_warmup_cosine",
        (),
        "AdamW, weight decay, warm-up then cosine decay, dropout 0.1",
        healthy_adamw_warmup_cosine,
    ),
    Sample(
        "healthy_noisy_small_batch_regression",
        (),
        "regression with batches of 8: noisy per-step loss",
        healthy_noisy_small_batch_regression,
    ),
    Sample(
        "nan_lr_huge",
        ("nonfinite_loss", "learning_rate_too_high"),
        "SGD with lr=2 on a regression: the loss turns NaN",
        nan_lr_huge,
    ),
    Sample(
        "diverging_lr_warmup_bug",
        ("diverging", "learning_rate_too_high"),
        "learning rate grows 2% per step: training diverges",
        diverging_lr_warmup_bug,
    ),
    Sample("lr_too_low", ("learning_rate_too_low",), "plain SGD with lr=2e-4: slow, near-linear progress", lr_too_low),
    Sample(
        "not_converged",
        (),
        "Adam 1e-3 stopped after 2 epochs: still improving, but it learned",
        not_converged,
        advisories=("not_converged",),
    ),
    Sample(
        "overfitting_small_data",
        ("overfitting", "dataset_too_small"),
        "64 noisy samples, wide network, 150 epochs (no recorder)",
        overfitting_small_data,
        recorder=False,
    ),
    Sample(
        "plateau_zero_init",
        ("bad_weight_init", "plateau"),
        "all weights initialised to zero: flat at chance",
        plateau_zero_init,
    ),
    Sample(
        "softmax_before_cross_entropy",
        ("loss_input_mismatch",),
        "Softmax output fed to nn.CrossEntropyLoss",
        softmax_before_cross_entropy,
    ),
    Sample("sorted_by_label", ("data_not_shuffled",), "training data sorted by label, never shuffled", sorted_by_label),
    Sample("imbalanced_labels", ("class_imbalance",), "class 0 is 95% of the training data", imbalanced_labels),
    Sample(
        "eval_in_train_mode", ("eval_mode_not_set",), "dropout 0.5, validation without model.eval()", eval_in_train_mode
    ),
    Sample(
        "huge_init_output_layer",
        (),
        "output layer weights scaled 40x at init; training recovers",
        huge_init,
        advisories=("initial_loss_mismatch", "bad_weight_init"),
    ),
    Sample(
        "head_not_in_optimizer",
        ("frozen_parameters",),
        "optimizer built without the output layer",
        head_not_in_optimizer,
    ),
    Sample("unscaled_targets", ("targets_not_normalized",), "regression targets in the thousands", unscaled_targets),
    Sample(
        "relu_output_regression",
        ("final_layer_activation",),
        "ReLU on the output of a signed regression",
        relu_output_regression,
    ),
    Sample("heavy_dropout", ("too_much_regularization",), "dropout 0.9 after every hidden layer", heavy_dropout),
    Sample("shuffled_labels", ("labels_unrelated",), "training labels shuffled against their inputs", shuffled_labels),
    Sample(
        "raw_scale_inputs",
        (),
        "inputs on a raw 0..255-like scale; Adam still trains",
        raw_scale_inputs,
        advisories=("inputs_not_normalized",),
    ),
    Sample("nan_in_inputs", ("nonfinite_inputs", "nonfinite_loss"), "2% of rows have a NaN input value", nan_in_inputs),
    Sample(
        "constant_feature_columns",
        (),
        "4 input columns constant; the others carry the task",
        constant_feature_columns,
        advisories=("constant_features",),
    ),
    Sample(
        "val_not_normalized",
        ("train_val_preprocessing_mismatch",),
        "validation inputs left unnormalised",
        val_not_normalized,
    ),
    Sample("dead_relu_negative_bias", ("dead_relu",), "hidden biases initialised to -6", dead_relu_negative_bias),
    Sample("saturated_tanh", ("saturated_activations",), "tanh network with 20x too large weights", saturated_tanh),
    Sample("batchnorm_tiny_batches", ("batchnorm_small_batch",), "BatchNorm with batches of 2", batchnorm_tiny_batches),
    Sample(
        "gradients_never_zeroed",
        ("gradients_not_zeroed",),
        "optimizer.zero_grad() never called",
        gradients_never_zeroed,
    ),
    Sample(
        "no_bias_layers",
        (),
        "Linear layers without bias, no normalisation; trains fine",
        no_bias_layers,
        advisories=("missing_bias",),
    ),
    Sample(
        "same_batch_every_step",
        ("repeated_batch",),
        "next(iter(loader)) every step: always the first batch",
        same_batch_every_step,
    ),
    Sample(
        "huge_batches",
        (),
        "batches of 1,000 out of 4,000 samples: 4 updates per epoch, still falling",
        huge_batches,
        advisories=("batch_size_too_large",),
    ),
    Sample(
        "tiny_dataset",
        ("dataset_too_small", "overfitting"),
        "96 noisy samples for a 70k-parameter network",
        tiny_dataset,
    ),
    Sample(
        "clipping_hides_high_lr",
        (),
        "SGD lr=1 held back by clipping at 0.05; it trains",
        clipping_hides_high_lr,
        advisories=("gradient_clipping_masks_lr",),
    ),
    Sample(
        "lr_decays_in_two_epochs",
        ("lr_decay_too_fast",),
        "ExponentialLR(0.3) per epoch over 12 epochs",
        lr_decays_in_two_epochs,
    ),
    Sample("deep_plain_mlp", ("network_too_deep",), "plain 14-layer ReLU MLP, no normalisation", deep_plain_mlp),
    Sample("bottleneck_mlp", ("insufficient_capacity",), "1 hidden unit for 4 classes", bottleneck_mlp),
)

SAMPLE_TAG = "sample.name"
EXPECTED_TAG = "sample.expected_causes"
ADVISORIES_TAG = "sample.expected_advisories"


def train_sample(sample: Sample, experiment_id: str) -> str:
    """Train one sample into a new run of the experiment; returns the run id."""
    mlflow_nnaudit.autolog(disable=not sample.recorder, silent=True)
    with mlflow.start_run(experiment_id=experiment_id, run_name=sample.name) as run:
        mlflow.set_tags(
            {
                SAMPLE_TAG: sample.name,
                EXPECTED_TAG: ",".join(sample.expected),
                ADVISORIES_TAG: ",".join(sample.advisories),
                "sample.description": sample.description,
            }
        )
        sample.train(sample)
    return run.info.run_id
