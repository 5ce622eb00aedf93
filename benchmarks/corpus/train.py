"""Train one `RunSpec` into the active MLflow run: data, models and the three styles of loop.

Every task is a balanced 4-class classification (chance loss ln 4) on synthetic data made here
(nothing is downloaded): an MLP on teacher-labelled vectors (`sample_runs.faults`' task), a CNN
on 12x12 images whose class is the quadrant of a bright patch, an LSTM/GRU on sequences whose
class comes from a teacher on their time average, and a 2-layer BERT built from a config on
token sequences whose class is the most frequent token group. Runs log their own curves the way
users do (per-epoch `train_loss`/`val_loss`/`val_acc` in plain loops, `self.log` in Lightning, the
Trainer's `loss`/`eval_loss`); the recorder, switched on by `mlflow.autolog()`, adds its own.

The outcome facts the labels are decided from (the training losses seen, the final validation
loss) are returned to the caller, which tags them under `corpus.` (never `nnaudit.`).
"""

from __future__ import annotations

import math

import mlflow
import torch
from torch import nn

from benchmarks.corpus.specs import RunSpec
from sample_runs.faults import _zero_init, imbalance, teacher_classification

N_CLASSES = 4
N_TRAIN, N_VAL = 1024, 512
VOCAB, SEQ = 32, 12


# --- data ---------------------------------------------------------------------------------------
def make_data(family: str, seed: int, label_noise: float = 0.0):
    g = torch.Generator().manual_seed(1000 + seed)
    if family == "mlp":
        return teacher_classification(N_TRAIN, N_VAL, seed, label_noise)

    def noisy(y):
        if label_noise > 0:
            flip = torch.rand(len(y), generator=g) < label_noise
            y = torch.where(flip, torch.randint(0, N_CLASSES, (len(y),), generator=g), y)
        return y

    if family == "cnn":

        def make(n):
            y = torch.randint(0, N_CLASSES, (n,), generator=g)
            x = torch.randn(n, 1, 12, 12, generator=g) * 0.7
            r0 = (y // 2) * 6 + torch.randint(0, 3, (n,), generator=g)
            c0 = (y % 2) * 6 + torch.randint(0, 3, (n,), generator=g)
            for i in range(n):
                x[i, 0, r0[i] : r0[i] + 3, c0[i] : c0[i] + 3] += 1.5
            return x, y
    elif family == "rnn":
        tg = torch.Generator().manual_seed(77)
        w1, w2 = torch.randn(6, 16, generator=tg), torch.randn(16, N_CLASSES, generator=tg)

        def make(n):
            x = torch.randn(n, SEQ, 6, generator=g)
            y = (torch.tanh(x.mean(1) * 3 @ w1) @ w2).argmax(1)
            return x, y
    else:  # bert

        def make(n):
            x = torch.randint(0, VOCAB, (n, SEQ), generator=g)
            counts = torch.stack([(x % N_CLASSES == k).sum(1) for k in range(N_CLASSES)], 1).float()
            y = (counts + 0.1 * torch.rand(n, N_CLASSES, generator=g)).argmax(1)
            return x, y

    (xt, yt), (xv, yv) = make(N_TRAIN), make(N_VAL)
    return (xt, noisy(yt)), (xv, yv)


# --- models -------------------------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self, act=nn.ReLU, dropout: float = 0.0):
        super().__init__()
        layers = []
        for a, b in ((20, 64), (64, 64)):
            layers += [nn.Linear(a, b), act()] + ([nn.Dropout(dropout)] if dropout else [])
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(64, N_CLASSES)

    def forward(self, x):
        return self.head(self.body(x))


class CNN(nn.Module):
    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            *([nn.Dropout(dropout)] if dropout else []),
        )
        self.head = nn.Linear(144, N_CLASSES)

    def forward(self, x):
        return self.head(self.body(x))


class RNN(nn.Module):
    def __init__(self, cell: str = "lstm"):
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(6, 32, batch_first=True)
        self.head = nn.Linear(32, N_CLASSES)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def bert_model(dropout: float = 0.1):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=SEQ + 4,
        num_labels=N_CLASSES,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return BertForSequenceClassification(cfg)


class BertLogits(nn.Module):
    """A BERT classifier as plain code uses it: token ids in, logits out."""

    def __init__(self, dropout: float = 0.1):
        super().__init__()
        self.bert = bert_model(dropout)
        self.head = self.bert.classifier

    def forward(self, x):
        return self.bert(input_ids=x).logits


def make_model(spec: RunSpec) -> nn.Module:
    k = spec.knobs
    if spec.family == "mlp":
        model = MLP(nn.Tanh if "tanh_scale" in k else nn.ReLU, k.get("dropout", 0.0))
    elif spec.family == "cnn":
        model = CNN(k.get("dropout", 0.0))
    elif spec.family == "rnn":
        model = RNN("gru" if spec.seed % 2 else "lstm")
    else:
        model = BertLogits()
    with torch.no_grad():
        if k.get("zero_init"):
            model.apply(_zero_init)
        if "tanh_scale" in k:
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    m.weight.mul_(k["tanh_scale"])
        if "neg_bias" in k:
            for m in model.body.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    nn.init.constant_(m.bias, k["neg_bias"])
        if "head_scale" in k:
            model.head.weight.mul_(k["head_scale"])
    if k.get("softmax_head"):
        model = nn.Sequential(model, nn.Softmax(dim=-1))
    return model


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0, line_search: bool = False):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay or 0.01)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr)
    if name == "lbfgs":
        # a sweep's LBFGS takes learning-rate-sized steps (no line search), as in PyTorch's sequence example
        return torch.optim.LBFGS(
            params, lr=lr, max_iter=4, history_size=10, line_search_fn="strong_wolfe" if line_search else None
        )
    raise ValueError(name)


def trained_params(model: nn.Module, spec: RunSpec):
    if spec.knobs.get("frozen_head"):
        head = model[0].head if isinstance(model, nn.Sequential) else model.head
        skip = {id(p) for p in head.parameters()}
        return [p for p in model.parameters() if id(p) not in skip]
    return list(model.parameters())


def prepared_data(spec: RunSpec):
    k = spec.knobs
    (xt, yt), (xv, yv) = make_data(spec.family, spec.seed, k.get("label_noise", 0.0))
    if "x_scale" in k:
        xt, xv = xt * k["x_scale"] + k["x_shift"], xv * k["x_scale"] + k["x_shift"]
    if "val_scale" in k:
        xv = xv * k["val_scale"] + k["val_shift"]
    if "nan_rows" in k:
        g = torch.Generator().manual_seed(spec.seed)
        rows = torch.rand(len(xt), generator=g) < k["nan_rows"]
        xt = xt.clone()
        xt.view(len(xt), -1)[rows, 0] = float("nan")  # one value of each poisoned row
    if "majority_share" in k:
        xt, yt = imbalance(xt, yt, k["majority_share"], spec.seed)
    if k.get("sort_by_label"):
        order = torch.argsort(yt, stable=True)
        xt, yt = xt[order], yt[order]
    return (xt, yt), (xv, yv)


def schedule(spec: RunSpec, opt, total_steps: int):
    """A per-step scheduler (warm-up/cosine) or a per-epoch one (exponential, StepLR), or None."""
    k = spec.knobs
    if "warmup" in k:
        warm = max(1, int(total_steps * k["warmup"]))
        return "step", torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda i: (
                (i + 1) / warm if i < warm else 0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, total_steps - warm)))
            ),
        )
    if "gamma" in k:
        return "epoch", torch.optim.lr_scheduler.ExponentialLR(opt, k["gamma"])
    if "step_lr" in k:
        return "epoch", torch.optim.lr_scheduler.StepLR(opt, *k["step_lr"])
    return None, None


def epochs_of(spec: RunSpec) -> int:
    default = {"mlp": 10, "cnn": 6, "rnn": 8, "bert": 6}[spec.family]
    if spec.optimizer == "lbfgs":
        default = 25
    return spec.knobs.get("epochs", default)


def batch_of(spec: RunSpec, n: int) -> int:
    b = spec.knobs.get("batch_size", 32)
    return n if (b == 0 or spec.optimizer == "lbfgs") else b


# --- the three styles ---------------------------------------------------------------------------
def train_plain(spec: RunSpec) -> dict:
    k = spec.knobs
    (xt, yt), (xv, yv) = prepared_data(spec)
    model = make_model(spec)
    opt = make_optimizer(
        spec.optimizer, trained_params(model, spec), spec.lr, k.get("weight_decay", 0.0), k.get("line_search", False)
    )
    loss_fn = nn.CrossEntropyLoss()
    epochs, batch = epochs_of(spec), batch_of(spec, len(xt))
    steps_per_epoch = math.ceil(len(xt) / batch)
    when, sched = schedule(spec, opt, epochs * steps_per_epoch)
    mlflow.log_params({"lr": spec.lr, "optimizer": spec.optimizer, "epochs": epochs, "batch_size": batch})
    g = torch.Generator().manual_seed(spec.seed)
    losses, vals = [], []
    best, bad = float("inf"), 0
    for epoch in range(epochs):
        model.train()
        perm = torch.arange(len(xt)) if k.get("sort_by_label") else torch.randperm(len(xt), generator=g)
        total, n = 0.0, 0
        for i in range(0, len(xt), batch):
            idx = perm[:batch] if k.get("same_batch") else perm[i : i + batch]
            x, y = xt[idx], yt[idx]
            if spec.optimizer == "lbfgs":

                def closure(x=x, y=y):  # bound now: LBFGS calls it within this step
                    opt.zero_grad()
                    out = loss_fn(model(x), y)
                    out.backward()
                    return out

                loss = opt.step(closure)
            else:
                if not k.get("no_zero_grad"):
                    opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                if "clip_norm" in k:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), k["clip_norm"])
                opt.step()
            if "lr_growth" in k:
                for group in opt.param_groups:
                    group["lr"] *= k["lr_growth"]
            if when == "step":
                sched.step()
            value = float(loss.detach())
            losses.append(value)
            total, n = total + value, n + 1
        if when == "epoch":
            sched.step()
        if not k.get("no_eval"):
            model.eval()
        with torch.no_grad():
            out = model(xv)
            val = float(loss_fn(out, yv))
            acc = float((out.argmax(-1) == yv).float().mean())
        vals.append(val)
        mlflow.log_metrics({"train_loss": total / n, "val_loss": val, "val_acc": acc}, step=epoch)
        if "patience" in k:
            if val < best - 1e-4:
                best, bad = val, 0
            else:
                bad += 1
                if bad >= k["patience"]:
                    break
    return {"losses": losses, "val": vals}


def train_lightning(spec: RunSpec) -> dict:
    import lightning.pytorch as pl

    (xt, yt), (xv, yv) = prepared_data(spec)
    model = make_model(spec)
    losses: list[float] = []
    vals: list[float] = []

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def training_step(self, batch, _):
            x, y = batch
            loss = nn.functional.cross_entropy(self.model(x), y)
            losses.append(float(loss.detach()))
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            out = self.model(x)
            loss = nn.functional.cross_entropy(out, y)
            self.log("val_loss", loss)
            self.log("val_acc", (out.argmax(-1) == y).float().mean())

        def on_validation_epoch_end(self):
            if not self.trainer.sanity_checking:
                vals.append(float(self.trainer.callback_metrics.get("val_loss", float("nan"))))

        def configure_optimizers(self):
            return make_optimizer(spec.optimizer, self.parameters(), spec.lr)

    g = torch.Generator().manual_seed(spec.seed)
    train = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xt, yt), batch_size=batch_of(spec, len(xt)), shuffle=True, generator=g
    )
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), batch_size=256)
    mlflow.log_params({"optimizer": spec.optimizer})
    trainer = pl.Trainer(
        max_epochs=epochs_of(spec),
        enable_progress_bar=False,
        enable_checkpointing=False,
        accelerator="cpu",
        enable_model_summary=False,
        num_sanity_val_steps=0,
        logger=False,
        log_every_n_steps=5,
    )
    trainer.fit(Module(), train, val)
    return {"losses": losses, "val": vals}


def train_hf(spec: RunSpec) -> dict:
    from transformers import PrinterCallback, Trainer, TrainingArguments

    (xt, yt), (xv, yv) = prepared_data(spec)
    losses: list[float] = []

    class Data(torch.utils.data.Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            key = "input_ids" if spec.family == "bert" else "x"
            return {key: self.x[i], "labels": self.y[i]}

    if spec.family == "bert":
        model = bert_model()
        if spec.knobs.get("head_scale"):
            with torch.no_grad():
                model.classifier.weight.mul_(spec.knobs["head_scale"])
    else:
        inner = make_model(spec)

        class Wrapped(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = inner

            def forward(self, x, labels=None):
                logits = self.net(x)
                out = {"logits": logits}
                if labels is not None:
                    out["loss"] = nn.functional.cross_entropy(logits, labels)
                return out

        model = Wrapped()

    def keep_loss(module, _inp, out):
        loss = out["loss"] if isinstance(out, dict) else getattr(out, "loss", None)
        if module.training and loss is not None:
            losses.append(float(loss.detach()))

    model.register_forward_hook(keep_loss)
    k = spec.knobs
    total_steps = epochs_of(spec) * math.ceil(len(xt) / batch_of(spec, len(xt)))
    args = TrainingArguments(
        output_dir="hf_out",
        report_to=["mlflow"],
        use_cpu=True,
        num_train_epochs=epochs_of(spec),
        learning_rate=spec.lr,
        per_device_train_batch_size=batch_of(spec, len(xt)),
        per_device_eval_batch_size=256,
        eval_strategy="epoch",
        logging_steps=5,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        optim="adamw_torch",
        seed=spec.seed,
        warmup_steps=int(total_steps * k.get("warmup", 0.0)),
        lr_scheduler_type="cosine" if k.get("cosine") else "constant",
        weight_decay=k.get("weight_decay", 0.0),
    )
    trainer = Trainer(model=model, args=args, train_dataset=Data(xt, yt), eval_dataset=Data(xv, yv))
    trainer.remove_callback(PrinterCallback)  # the logs go to MLflow, not to the terminal
    mlflow.log_params({"optimizer": spec.optimizer})  # the Trainer logs learning_rate and optim itself
    trainer.train()
    vals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    return {"losses": losses, "val": vals}


STYLES = {"plain": train_plain, "lightning": train_lightning, "hf": train_hf}


def train_spec(spec: RunSpec) -> dict:
    torch.manual_seed(spec.seed)
    return STYLES[spec.style](spec)
