"""A matrix-factorisation recommender trained on implicit feedback with the BPR loss (one sampled negative item per observed interaction, fresh negatives each epoch), evaluated leave-one-out by HR@10 and NDCG@10 against 99 sampled negatives.

Report: healthy, in the style of guoyang9/BPR-pytorch (Rendle et al. 2009, "BPR: Bayesian Personalized Ranking
  from Implicit Feedback": `BPR(user_num, item_num, factor_num)` with `embed_user` / `embed_item` initialised
  `nn.init.normal_(std=0.01)`, `forward(user, item_i, item_j)` returning the two dot products, loss
  `- (prediction_i - prediction_j).sigmoid().log().sum()`, `optim.SGD(lr=0.01, weight_decay=0.001)`, batch 4096,
  `train_loader.dataset.ng_sample()` before each epoch, leave-one-out HR@10 / NDCG@10 over 1 + 99 items)
  https://github.com/guoyang9/BPR-pytorch
Setup: 600 users x 1,000 items from a hidden 8-factor taste model (each user's 20-45 interactions drawn by a
softmax of the true scores, item popularity skewed), one interaction per user held out as its test item;
BPR with 32 factors, the summed BPR loss per batch of 4,096 triples, SGD(lr=0.01, weight_decay=0.001)
as in the repository, 4 negatives per interaction (`num_ng=4`), 25 epochs; per epoch `loss` (mean BPR loss
per triple), HR and NDCG (top 10) on the held-out items, as the repository prints them.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: HR@10 0.123 -> 0.41 (epoch 7) -> 0.49 after 25 epochs, NDCG@10 0.060 -> 0.299, both still rising;
`loss` sits at ln 2 = 0.693 for the first 7 epochs (the 0.01-std embeddings give dot products near 0, as
in the repository) while HR already climbs, then falls 0.686 -> 0.366, still falling at the end (checked;
68 s wall on a 2-core machine loaded by three helpers, 31 s CPU, OMP_NUM_THREADS=1).
"""

import mlflow
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)
USERS, ITEMS, TRUE_K = 600, 1000, 8

u_true = rng.normal(0, 1, (USERS, TRUE_K))
i_true = rng.normal(0, 1, (ITEMS, TRUE_K))
popularity = rng.normal(0, 1.0, ITEMS)
train_pairs, test_items, seen = [], [], []
for u in range(USERS):
    scores = 1.2 * u_true[u] @ i_true.T / np.sqrt(TRUE_K) + popularity
    p = np.exp(scores - scores.max())
    items = rng.choice(ITEMS, size=int(rng.integers(20, 46)), replace=False, p=p / p.sum())
    test_items.append(items[0])
    train_pairs += [(u, i) for i in items[1:]]
    seen.append(set(items.tolist()))
train_pairs = np.array(train_pairs)

# leave-one-out test: the held-out item and 99 items the user never touched
test_candidates = []
for u in range(USERS):
    negs = []
    while len(negs) < 99:
        j = int(rng.integers(ITEMS))
        if j not in seen[u]:
            negs.append(j)
    test_candidates.append([test_items[u], *negs])
test_candidates = torch.tensor(test_candidates)


class BPRData(Dataset):
    def __init__(self, features, num_item, train_mat, num_ng):
        self.features, self.num_item, self.train_mat, self.num_ng = features, num_item, train_mat, num_ng
        self.features_fill = None

    def ng_sample(self):
        fill = []
        for u, i in self.features:
            for _ in range(self.num_ng):
                j = int(rng.integers(self.num_item))
                while j in self.train_mat[u]:
                    j = int(rng.integers(self.num_item))
                fill.append((u, i, j))
        self.features_fill = np.array(fill)

    def __len__(self):
        return len(self.features_fill)

    def __getitem__(self, idx):
        u, i, j = self.features_fill[idx]
        return u, i, j


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
        users = torch.arange(USERS)[:, None].expand_as(test_candidates)
        scores = (model.embed_user(users) * model.embed_item(test_candidates)).sum(-1)
        rank = (scores > scores[:, :1]).sum(1)  # items scored above the held-out one
    hit = (rank < top_k).float()
    ndcg = hit / torch.log2(rank.float() + 2)
    return hit.mean().item(), ndcg.mean().item()


train_dataset = BPRData(train_pairs, ITEMS, seen, num_ng=4)
model = BPR(USERS, ITEMS, 32)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, weight_decay=0.001)

with mlflow.start_run():
    mlflow.log_params({"factor_num": 32, "lr": 0.01, "lamda": 0.001, "batch_size": 4096, "num_ng": 4, "epochs": 25})
    for epoch in range(25):
        model.train()
        train_dataset.ng_sample()
        train_loader = DataLoader(train_dataset, batch_size=4096, shuffle=True)
        total, count = 0.0, 0
        for user, item_i, item_j in train_loader:
            model.zero_grad()
            prediction_i, prediction_j = model(user, item_i, item_j)
            loss = -(prediction_i - prediction_j).sigmoid().log().sum()
            loss.backward()
            optimizer.step()
            total += loss.item()
            count += len(user)
        model.eval()
        HR, NDCG = metrics(model)
        mlflow.log_metrics({"loss": total / count, "HR": HR, "NDCG": NDCG}, step=epoch)
        print(f"epoch {epoch:02d} loss {total / count:.4f} HR: {HR:.3f} NDCG: {NDCG:.3f}")
