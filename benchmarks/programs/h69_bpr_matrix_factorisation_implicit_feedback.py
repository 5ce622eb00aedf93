"""A matrix-factorisation recommender trained with the BPR pairwise loss on implicit feedback, evaluated leave-one-out by HR@10 and NDCG@10 against 99 sampled negatives per user.

Report: healthy, in the style of guoyang9/BPR-pytorch (main.py: `BPR(user_num, item_num, factor_num)` with
  user and item embeddings initialised `nn.init.normal_(std=0.01)`, prediction the dot product,
  `loss = - (prediction_i - prediction_j).sigmoid().log().sum()`, `optim.SGD(lr=0.01, weight_decay=0.001)`,
  batch 4096, 4 negatives sampled anew each epoch by `train_loader.dataset.ng_sample()`, HR@10 / NDCG@10
  with the held-out item ranked among 99 negatives) https://github.com/guoyang9/BPR-pytorch , after
  Rendle et al. 2009, "BPR: Bayesian Personalized Ranking from Implicit Feedback"
Setup: 800 synthetic users x 500 items, each user's interactions drawn from a softmax over a hidden
8-factor affinity (20-60 items each, ~31k interactions), the most recent one held out per user; factor_num
32, the repo's loss, optimiser and batch, 4 negatives per positive, 20 epochs; per epoch the mean BPR loss
per pair as `loss` and `HR` / `NDCG` on the held-out items, with mlflow.log_metrics.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: loss 0.6931 (ln 2: the std-0.01 init scores every pair alike) flat for ~5 epochs, then falling to
0.229; HR@10 0.099 -> 0.514, NDCG@10 0.042 -> 0.284, levelling off over the last 4 epochs (32 s wall,
14 s CPU, OMP_NUM_THREADS=1).
"""

import mlflow
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)
USERS, ITEMS, TRUE_K = 800, 500, 8

# ---- synthetic implicit feedback ----
pu = rng.normal(0, 1, (USERS, TRUE_K))
qi = rng.normal(0, 1, (ITEMS, TRUE_K))
popularity = rng.normal(0, 1, ITEMS)
affinity = pu @ qi.T / np.sqrt(TRUE_K) * 1.8 + 0.6 * popularity
train_pairs, test_items, seen = [], [], []
for u in range(USERS):
    p = np.exp(affinity[u] - affinity[u].max())
    items = rng.choice(ITEMS, rng.integers(20, 61), replace=False, p=p / p.sum())
    test_items.append(items[-1])  # leave-one-out: the last interaction
    train_pairs += [(u, i) for i in items[:-1]]
    seen.append(set(items.tolist()))
train_pairs = np.array(train_pairs)
print(f"{len(train_pairs)} training interactions")

# test: the held-out item and 99 items the user never interacted with
test_lists = []
for u in range(USERS):
    negatives = []
    while len(negatives) < 99:
        j = int(rng.integers(ITEMS))
        if j not in seen[u] and j not in negatives:
            negatives.append(j)
    test_lists.append([test_items[u]] + negatives)
test_users = torch.arange(USERS).repeat_interleave(100)
test_cands = torch.tensor(test_lists).reshape(-1)


class BPRData(Dataset):
    def __init__(self, pairs, num_ng):
        self.pairs, self.num_ng = pairs, num_ng
        self.features = None

    def ng_sample(self):
        users = np.repeat(self.pairs[:, 0], self.num_ng)
        pos = np.repeat(self.pairs[:, 1], self.num_ng)
        neg = rng.integers(0, ITEMS, len(users))
        for k in range(len(users)):
            while neg[k] in seen[users[k]]:
                neg[k] = rng.integers(0, ITEMS)
        self.features = np.stack([users, pos, neg], 1)

    def __len__(self):
        return len(self.features)

    def __getitem__(self, idx):
        u, i, j = self.features[idx]
        return int(u), int(i), int(j)


class BPR(nn.Module):
    def __init__(self, user_num, item_num, factor_num):
        super().__init__()
        self.embed_user = nn.Embedding(user_num, factor_num)
        self.embed_item = nn.Embedding(item_num, factor_num)
        nn.init.normal_(self.embed_user.weight, std=0.01)
        nn.init.normal_(self.embed_item.weight, std=0.01)

    def forward(self, user, item_i, item_j):
        user = self.embed_user(user)
        prediction_i = (user * self.embed_item(item_i)).sum(dim=-1)
        prediction_j = (user * self.embed_item(item_j)).sum(dim=-1)
        return prediction_i, prediction_j


def metrics(model, top_k=10):
    with torch.no_grad():
        scores, _ = model(test_users, test_cands, test_cands)
    ranks = (scores.view(USERS, 100) > scores.view(USERS, 100)[:, :1]).sum(1)  # items ranked above the held-out one
    hit = (ranks < top_k).float()
    ndcg = hit / torch.log2(ranks.float() + 2)
    return hit.mean().item(), ndcg.mean().item()


train_dataset = BPRData(train_pairs, num_ng=4)
model = BPR(USERS, ITEMS, 32)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, weight_decay=0.001)

with mlflow.start_run():
    mlflow.log_params({"factor_num": 32, "lr": 0.01, "lamda": 0.001, "batch_size": 4096, "num_ng": 4, "top_k": 10})
    for epoch in range(20):
        model.train()
        train_dataset.ng_sample()
        features = torch.as_tensor(train_dataset.features)
        total, n = 0.0, 0
        for idx in torch.randperm(len(features)).split(4096):  # DataLoader(batch_size=4096, shuffle=True)
            user, item_i, item_j = features[idx].unbind(1)
            model.zero_grad()
            prediction_i, prediction_j = model(user, item_i, item_j)
            loss = -(prediction_i - prediction_j).sigmoid().log().sum()
            loss.backward()
            optimizer.step()
            total += loss.item()
            n += len(user)
        model.eval()
        HR, NDCG = metrics(model)
        mlflow.log_metrics({"loss": total / n, "HR": HR, "NDCG": NDCG}, step=epoch)
        print(f"epoch {epoch:02d} loss {total / n:.4f} HR: {HR:.3f} NDCG: {NDCG:.3f}")
