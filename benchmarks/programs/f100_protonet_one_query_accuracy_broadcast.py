"""A prototypical network (few-shot classification) validated with one query per class: `y_hat` comes out as (n_classes, 1) while `target_inds.squeeze()` is (n_classes,), so `y_hat.eq(...)` broadcasts to an n_classes x n_classes table and the validation accuracy is exactly 1/n_classes whatever the model predicts.

Report: orobix/Prototypical-Networks-for-Few-shot-Learning-PyTorch issue #23 "error at accuracy" ("please
  check the line 84 in prototypical_loss.py. I think `y_hat` should be sequeezed with `squeeze()` ...
  y_hat = [[0],[1],[2],[0],[4]], target_inds.squeeze() = [0, 1, 2, 3, 4] ... In this case, accuracy is
  0.2. It should be tensor([1., 1., 1., 0., 1.]). In this case, accuracy is 0.8")
  https://github.com/orobix/Prototypical-Networks-for-Few-shot-Learning-PyTorch/issues/23
Setup: the repository's `prototypical_loss` (squared Euclidean distances of the queries to the class
means of the support samples, log_softmax over the negated distances, loss gathered at
`target_inds`, `_, y_hat = log_p_y.max(2)`, `acc_val = y_hat.eq(target_inds.squeeze()).float().mean()`)
and its loop (the repository's 100 episodes an epoch cut to 50, Adam(lr=1e-3), StepLR(step_size=20, gamma=0.5), mean loss and
accuracy per epoch); training episodes 20-way 5-shot 5-query, validation episodes 5-way 5-shot with
one query per class (the user's setting that triggers the broadcast); synthetic "characters": 120
training and 40 validation classes, each a random prototype in 32 dimensions seen through a fixed
random tanh map into 64 input features, samples the prototype plus noise; embedding an MLP
64-128-128-64 with BatchNorm and ReLU instead of the repository's conv4 on 28x28 images; 6 epochs;
per-epoch train_loss / train_acc / val_loss / val_acc.
Expected first: loss_metric_disagreement
Acceptable in top 3: -
Symptom: loss_metric_disagreement
Fixed (--fix, `y_hat.squeeze()` against `target_inds.squeeze()`, as the issue proposes): val_acc 0.972 ->
0.964 -> 0.972 -> 0.956 -> 0.980 -> 0.968 over 6 epochs (buggy, the same training: val_acc exactly 0.200
at every epoch, 1/5 whatever the predictions, while train_loss falls 0.168 -> 0.013, train_acc rises
0.951 -> 0.997 and val_loss wanders 0.044-0.130 (0.100 -> 0.096), the model as good as the fixed one)
(checked; 31 s / 53 s CPU, 1 min 53 s / 2 min 14 s wall on a 2-core machine loaded ~10-17x by other jobs).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)

# ---- synthetic few-shot "characters" ----
LATENT, FEATURES, PER_CLASS = 32, 64, 20
MAP = torch.randn(LATENT, FEATURES) / LATENT**0.5


def make_classes(n_classes):
    protos = torch.randn(n_classes, 1, LATENT)
    latent = protos + 0.7 * torch.randn(n_classes, PER_CLASS, LATENT)
    return torch.tanh(1.5 * latent @ MAP)  # (classes, samples, features)


train_set, val_set = make_classes(120), make_classes(40)


def episode(data, n_way, n_support, n_query):
    """Inputs grouped by class as the repository's PrototypicalBatchSampler yields them, and their labels."""
    classes = rng.choice(len(data), n_way, replace=False)
    xs, ys = [], []
    for label, c in enumerate(classes):
        idx = torch.tensor(rng.choice(PER_CLASS, n_support + n_query, replace=False))
        xs.append(data[c, idx])
        ys += [label] * (n_support + n_query)
    return torch.cat(xs), torch.tensor(ys)


def euclidean_dist(x, y):
    n, m, d = x.size(0), y.size(0), x.size(1)
    x = x.unsqueeze(1).expand(n, m, d)
    y = y.unsqueeze(0).expand(n, m, d)
    return torch.pow(x - y, 2).sum(2)


def prototypical_loss(input, target, n_support):
    classes = torch.unique(target)
    n_classes = len(classes)
    n_query = target.eq(classes[0].item()).sum().item() - n_support
    support_idxs = [target.eq(c).nonzero()[:n_support].squeeze(1) for c in classes]
    prototypes = torch.stack([input[idx_list].mean(0) for idx_list in support_idxs])
    query_idxs = torch.stack([target.eq(c).nonzero()[n_support:] for c in classes]).view(-1)
    query_samples = input[query_idxs]
    dists = euclidean_dist(query_samples, prototypes)
    log_p_y = F.log_softmax(-dists, dim=1).view(n_classes, n_query, -1)
    target_inds = torch.arange(0, n_classes).view(n_classes, 1, 1).expand(n_classes, n_query, 1).long()
    loss_val = -log_p_y.gather(2, target_inds).squeeze().view(-1).mean()
    _, y_hat = log_p_y.max(2)
    if FIX:
        y_hat = y_hat.squeeze()
    acc_val = y_hat.eq(target_inds.squeeze()).float().mean()
    return loss_val, acc_val


model = nn.Sequential(
    nn.Linear(FEATURES, 128),
    nn.BatchNorm1d(128),
    nn.ReLU(),
    nn.Linear(128, 128),
    nn.BatchNorm1d(128),
    nn.ReLU(),
    nn.Linear(128, 64),
)
optim = torch.optim.Adam(model.parameters(), lr=1e-3)
lr_scheduler = torch.optim.lr_scheduler.StepLR(optim, step_size=20, gamma=0.5)
opt = {"epochs": 6, "iterations": 50, "classes_per_it_tr": 20, "num_support_tr": 5, "num_query_tr": 5}
opt.update({"classes_per_it_val": 5, "num_support_val": 5, "num_query_val": 1, "learning_rate": 1e-3})

with mlflow.start_run():
    mlflow.log_params(opt)
    for epoch in range(opt["epochs"]):
        train_loss, train_acc, val_loss, val_acc = [], [], [], []
        model.train()
        for _ in range(opt["iterations"]):
            x, y = episode(train_set, opt["classes_per_it_tr"], opt["num_support_tr"], opt["num_query_tr"])
            optim.zero_grad()
            loss, acc = prototypical_loss(model(x), target=y, n_support=opt["num_support_tr"])
            loss.backward()
            optim.step()
            train_loss.append(loss.item())
            train_acc.append(acc.item())
        lr_scheduler.step()
        model.eval()
        with torch.no_grad():
            for _ in range(opt["iterations"]):
                x, y = episode(val_set, opt["classes_per_it_val"], opt["num_support_val"], opt["num_query_val"])
                loss, acc = prototypical_loss(model(x), target=y, n_support=opt["num_support_val"])
                val_loss.append(loss.item())
                val_acc.append(acc.item())
        metrics = {
            "train_loss": float(np.mean(train_loss)),
            "train_acc": float(np.mean(train_acc)),
            "val_loss": float(np.mean(val_loss)),
            "val_acc": float(np.mean(val_acc)),
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(f"=== Epoch: {epoch} ===", {k: round(v, 4) for k, v in metrics.items()})
