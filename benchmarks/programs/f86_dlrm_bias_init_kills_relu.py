"""A DLRM click-through model built with the reference implementation's create_mlp initialisation, biases drawn from N(0, sqrt(1/m)): the one-unit top layer gets a bias of -1.49, its ReLU is off for every sample and no gradient ever flows.

Report: facebookresearch/dlrm pull request #358 "switched bias initialization to initialize to zeros per
  standard Xavier initialization" ("the bias may be initialized to a large negative value, leading to a
  negative input to Relu. This prevents any training, as all derivatives are zero afterward")
  https://github.com/facebookresearch/dlrm/pull/358 , from pytorch/benchmark pull request #1927 (the
  TorchBench DLRM's output was 0 for every sample and the first layer's gradient all zeros)
  https://github.com/pytorch/benchmark/pull/1927
Setup: synthetic CTR data (8 dense features, log-transformed and standardised as DLRM's Criteo loader does,
8 categorical features with 12-60 ids each; click probability from a logistic model of dense terms,
per-id effects and one dense x categorical interaction; 40% clicks); DLRM_Net as dlrm_s_pytorch.py:
bottom MLP 8-64-16, EmbeddingBag(sum) tables of dimension 16, dot-product interaction, top MLP
152-64-32-1, ReLU after every Linear including the last (TorchBench's configuration), create_mlp's init
(W ~ N(0, sqrt(2/(m+n))), b ~ N(0, sqrt(1/m)), tables ~ U(-sqrt(1/n), sqrt(1/n))), MSELoss (DLRM's
default loss function), SGD(lr=0.5), batch 128, 16000 training / 4000 test rows, 5 epochs; `loss` and
`accuracy` every 25 iterations, `test_loss` / `test_accuracy` / `test_auc` per epoch.
Expected first: dead_relu
Acceptable in top 3: bad_weight_init
Symptom: plateau
Fixed (--fix, biases initialised to zero as the pull request does): test_auc 0.628 -> 0.703 -> 0.787 ->
0.833 -> 0.869, test_accuracy 0.771, test_loss 0.238 -> 0.153 (the generating model's own AUC is 0.91)
(buggy: output bias -1.49, the output's pre-activation at most -1.16 (mean -1.47) on every training row
at init, so the model predicts 0 everywhere: test_loss 0.428 (= the click rate) and test_accuracy 0.572 in
every epoch, test_auc 0.5, loss 0.34-0.41 = the batch click rates) (checked; 17 s each, OMP_NUM_THREADS=1).
"""

import sys

import mlflow
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
N_DENSE, CARDS, DIM = 8, [12, 30, 60, 20, 40, 16, 50, 25], 16


def make_data(n):
    raw = rng.lognormal(1.0, 1.2, (n, N_DENSE))
    dense = np.log(raw + 1)
    cats = np.stack([rng.integers(0, c, n) for c in CARDS], 1)
    return dense, cats


data_rng = np.random.default_rng(123)
w_dense = data_rng.normal(0, 0.8, N_DENSE)
id_effects = [data_rng.normal(0, 0.9, c) for c in CARDS]


def clicks(dense, cats):
    z = (dense - 1.2) @ w_dense * 0.6 - 1.3
    z = z + sum(id_effects[j][cats[:, j]] for j in range(len(CARDS)))
    z = z + 0.8 * (dense[:, 0] - 1.2) * id_effects[2][cats[:, 2]]
    return (rng.random(len(z)) < 1 / (1 + np.exp(-z))).astype(np.float32)


dense_tr, cats_tr = make_data(16000)
dense_te, cats_te = make_data(4000)
y_tr, y_te = clicks(dense_tr, cats_tr), clicks(dense_te, cats_te)
mean, std = dense_tr.mean(0), dense_tr.std(0)
x_tr = torch.tensor((dense_tr - mean) / std, dtype=torch.float32)
x_te = torch.tensor((dense_te - mean) / std, dtype=torch.float32)
c_tr, c_te = torch.tensor(cats_tr), torch.tensor(cats_te)
t_tr, t_te = torch.tensor(y_tr).unsqueeze(1), torch.tensor(y_te).unsqueeze(1)
print("click rate", y_tr.mean())


class DLRM_Net(nn.Module):
    def create_mlp(self, ln):
        layers = nn.ModuleList()
        for i in range(len(ln) - 1):
            n, m = int(ln[i]), int(ln[i + 1])
            LL = nn.Linear(n, m, bias=True)
            W = np.random.normal(0.0, np.sqrt(2 / (m + n)), size=(m, n)).astype(np.float32)
            bt = np.random.normal(0.0, np.sqrt(1 / m), size=m).astype(np.float32)
            if FIX:
                bt = np.zeros(m, dtype=np.float32)
            LL.weight.data = torch.tensor(W, requires_grad=True)
            LL.bias.data = torch.tensor(bt, requires_grad=True)
            layers.append(LL)
            layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    def create_emb(self, m, ln):
        emb_l = nn.ModuleList()
        for n in ln:
            EE = nn.EmbeddingBag(n, m, mode="sum")
            W = np.random.uniform(low=-np.sqrt(1 / n), high=np.sqrt(1 / n), size=(n, m)).astype(np.float32)
            EE.weight.data = torch.tensor(W, requires_grad=True)
            emb_l.append(EE)
        return emb_l

    def __init__(self):
        super().__init__()
        n_f = len(CARDS) + 1
        self.bot_l = self.create_mlp([N_DENSE, 64, DIM])
        self.emb_l = self.create_emb(DIM, CARDS)
        self.top_l = self.create_mlp([DIM + n_f * (n_f - 1) // 2, 64, 32, 1])

    def interact_features(self, x, ly):
        batch_size, d = x.shape
        T = torch.cat([x] + ly, dim=1).view((batch_size, -1, d))
        Z = torch.bmm(T, torch.transpose(T, 1, 2))
        _, ni, nj = Z.shape
        li = torch.tensor([i for i in range(ni) for j in range(i)])
        lj = torch.tensor([j for i in range(nj) for j in range(i)])
        return torch.cat([x, Z[:, li, lj]], dim=1)

    def forward(self, dense_x, sparse_ids):
        x = self.bot_l(dense_x)
        offsets = torch.arange(len(sparse_ids))
        ly = [emb(sparse_ids[:, k], offsets) for k, emb in enumerate(self.emb_l)]
        return self.top_l(self.interact_features(x, ly))


np.random.seed(4)
dlrm = DLRM_Net()
print("top layer output bias", dlrm.top_l[-2].bias.item())
loss_fn = nn.MSELoss()
optimizer = torch.optim.SGD(dlrm.parameters(), lr=0.5)
it = 0
with mlflow.start_run():
    for epoch in range(5):
        dlrm.train()
        perm = torch.randperm(len(x_tr))
        for i in range(0, len(x_tr), 128):
            idx = perm[i : i + 128]
            Z = dlrm(x_tr[idx], c_tr[idx])
            E = loss_fn(Z, t_tr[idx])
            optimizer.zero_grad()
            E.backward()
            optimizer.step()
            if it % 25 == 0:
                acc = ((Z.detach() > 0.5).float() == t_tr[idx]).float().mean().item()
                mlflow.log_metrics({"loss": E.item(), "accuracy": acc}, step=it)
            it += 1
        dlrm.eval()
        with torch.no_grad():
            Z = dlrm(x_te, c_te)
        test_loss = loss_fn(Z, t_te).item()
        test_acc = ((Z > 0.5).float() == t_te).float().mean().item()
        test_auc = roc_auc_score(y_te, Z.squeeze(1).numpy()) if Z.std() > 0 else 0.5
        mlflow.log_metrics({"test_loss": test_loss, "test_accuracy": test_acc, "test_auc": test_auc}, step=it)
        print(f"epoch {epoch} loss {E.item():.4f} test_loss {test_loss:.4f} test_acc {test_acc:.4f} auc {test_auc:.4f}")
