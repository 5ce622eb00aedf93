"""An LSTM tweet classifier whose accuracy compares the predictions, gathered batch by batch from a shuffled DataLoader, with `y_train` / `y_test` in their original order: the loss falls while both accuracies sit at chance.

Report: FernandoLpz/Text-Classification-LSTMs-PyTorch issue #3 "Shuffling of the data" ("Your code
  is working with this suffling via scikit. The problem occurs when we use shuffle in pytorch DataLoader
  which results in the same Training and Testing accuracy (0.49, 0.50)") https://github.com/FernandoLpz/Text-Classification-LSTMs-PyTorch/issues/3
Setup: as the repository's main.py (the "Text classification with LSTMs in PyTorch" tutorial on the
disaster tweets): texts tokenised to the 1000 most frequent words, pre-padded to 20 tokens,
train_test_split(test_size=0.2); TweetClassifier: Embedding(1000, 64, padding_idx=0) -> 2-layer LSTM(64,
batch_first) -> Dropout(0.5) -> Linear(64, 257)-ReLU -> Dropout(0.5) -> Linear(257, 1)-sigmoid on the last
step, F.binary_cross_entropy, RMSprop(lr=0.01), batch 64, 10 epochs; `predictions += list(y_pred...)`
batch after batch and `calculate_accuray(self.y_train, predictions)` (and the same for the test loader),
with `shuffle=True` in both DataLoaders as the reporter set it; 5000 synthetic tweets (43% disasters,
told apart by which words they use). Per-epoch loss (mean over the epoch's batches), train_accuracy and
test_accuracy.
Expected first: loss_metric_disagreement
Acceptable in top 3: -
Symptom: loss_metric_disagreement
Fixed (--fix, the labels collected from the same batches as the predictions, so both lists share the
loader's order): train_accuracy 0.54 -> 0.997, test_accuracy 0.578 ->
0.924 after 10 epochs, over the same training as the buggy run (identical losses: loss 1.21 -> 0.687 for
epochs 2-3, the majority class, then 0.298 at epoch 5 -> 0.0099) (buggy: the same loss; train_accuracy
0.54 -> 0.51, test_accuracy 0.578 while the model predicted the majority class, then 0.47-0.53 once it
had learned, 0.514 at the end, chance for predictions paired with another tweet's label) (checked; ~70 s
wall each on a 2-core machine shared by three helpers, ~28 s CPU, OMP_NUM_THREADS=1).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
MAX_WORDS, MAX_LEN, N = 1000, 20, 5000

target = (rng.random(N) < 0.43).astype(np.float32)
word_p = 1.0 / np.arange(1, MAX_WORDS) ** 1.05
disaster_words = rng.choice(np.arange(1, MAX_WORDS), 60, replace=False)  # fire, flood, evacuated, ...
everyday_words = rng.choice(np.setdiff1d(np.arange(1, MAX_WORDS), disaster_words), 60, replace=False)
sequences = np.zeros((N, MAX_LEN), dtype=np.int64)
for i in range(N):
    length = rng.integers(6, MAX_LEN + 1)
    words = rng.choice(np.arange(1, MAX_WORDS), length, p=word_p / word_p.sum())
    topical = disaster_words if target[i] == 1 else everyday_words
    k = rng.integers(1, 3)
    words[rng.choice(length, k, replace=False)] = rng.choice(topical, k)
    sequences[i, MAX_LEN - length :] = words  # pad_sequences: zeros in front
perm = rng.permutation(N)
split = int(0.8 * N)
x_train, x_test = sequences[perm[:split]], sequences[perm[split:]]
y_train, y_test = target[perm[:split]], target[perm[split:]]


class DatasetMaper(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        return self.x[idx], self.y[idx]


class TweetClassifier(nn.Module):
    def __init__(self, hidden_dim=64, lstm_layers=2):
        super().__init__()
        self.hidden_dim, self.lstm_layers = hidden_dim, lstm_layers
        self.dropout = nn.Dropout(0.5)
        self.embedding = nn.Embedding(MAX_WORDS, hidden_dim, padding_idx=0)
        self.lstm = nn.LSTM(hidden_dim, hidden_dim, num_layers=lstm_layers, batch_first=True)
        self.fc1 = nn.Linear(hidden_dim, 257)
        self.fc2 = nn.Linear(257, 1)

    def forward(self, x):
        h = torch.zeros(self.lstm_layers, x.size(0), self.hidden_dim)
        c = torch.zeros(self.lstm_layers, x.size(0), self.hidden_dim)
        nn.init.xavier_normal_(h)
        nn.init.xavier_normal_(c)
        out, _ = self.lstm(self.embedding(x), (h, c))
        out = self.dropout(out)
        out = torch.relu_(self.fc1(out[:, -1, :]))
        out = self.dropout(out)
        return torch.sigmoid(self.fc2(out))


def calculate_accuray(grand_truth, predictions):
    true_positives = true_negatives = 0
    for true, pred in zip(grand_truth, predictions):
        if pred > 0.5 and true == 1:
            true_positives += 1
        elif pred < 0.5 and true == 0:
            true_negatives += 1
    return (true_positives + true_negatives) / len(grand_truth)


model = TweetClassifier()
optimizer = torch.optim.RMSprop(model.parameters(), lr=0.01)
loader_training = DataLoader(DatasetMaper(x_train, y_train), batch_size=64, shuffle=True)
loader_test = DataLoader(DatasetMaper(x_test, y_test), batch_size=64, shuffle=True)


def evaluation():
    predictions, labels = [], []
    model.eval()
    with torch.no_grad():
        for x_batch, y_batch in loader_test:
            predictions += list(model(x_batch).squeeze(1).numpy())
            labels += list(y_batch.numpy())
    return predictions, labels


with mlflow.start_run():
    mlflow.log_params({"max_words": MAX_WORDS, "max_len": MAX_LEN, "batch_size": 64, "lr": 0.01, "epochs": 10})
    for epoch in range(10):
        predictions, labels, losses = [], [], []
        model.train()
        for x_batch, y_batch in loader_training:
            y_pred = model(x_batch).squeeze(1)
            loss = F.binary_cross_entropy(y_pred, y_batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            predictions += list(y_pred.detach().numpy())
            labels += list(y_batch.numpy())
            losses.append(loss.item())
        test_predictions, test_labels = evaluation()
        train_accuary = calculate_accuray(labels if FIX else y_train, predictions)
        test_accuracy = calculate_accuray(test_labels if FIX else y_test, test_predictions)
        mlflow.log_metrics(
            {"loss": float(np.mean(losses)), "train_accuracy": train_accuary, "test_accuracy": test_accuracy},
            step=epoch,
        )
        print(
            f"Epoch: {epoch + 1}, loss: {np.mean(losses):.5f}, "
            f"Train accuracy: {train_accuary:.5f}, Test accuracy: {test_accuracy:.5f}"
        )
