"""A character-level CNN text classifier in the style of Zhang, Zhao & LeCun (2015): each text quantised into one-hot characters read backwards and cut or zero-padded to a fixed length, a stack of six temporal convolutions (kernels 7, 7, 3, 3, 3, 3) with three max-poolings, two fully connected layers with dropout 0.5, Gaussian initialisation, SGD with momentum 0.9 and the learning rate halved every 3 epochs; per-epoch training and test loss and accuracy.

Report: healthy, in the style of "Character-level Convolutional Networks for Text Classification" (Zhang,
  Zhao & LeCun, NeurIPS 2015; the "small" model: 256 features, kernels 7-7-3-3-3-3, pooling 3 after
  layers 1, 2 and 6, FC 1024 with dropout 0.5, Gaussian init std 0.05, SGD momentum 0.9, step size 0.01
  halved every 3 epochs, minibatch 128) https://arxiv.org/abs/1509.01626
Setup: a synthetic 4-topic news corpus: 2,400 training / 600 test texts of random words (3-7 letters) drawn
from a 300-word vocabulary in which each topic has 10 words of its own that make up ~40% of its texts' words
(the rest shared); alphabet of 26 letters, space and 9 punctuation marks (36 one-hot rows, unknown characters
all-zero as in the paper); texts read backwards and cut/padded to 128 characters (the paper's 1014 scaled
down); the paper's small model scaled to 64 features and FC 128 (dropout 0.5); He-normal weights, biases 0 (the
paper's N(0, 0.05) left the scaled-down stack at chance for 12 epochs, as did 25 topic words at 25%);
CrossEntropyLoss, SGD(lr=0.01, momentum=0.9), StepLR(step_size=3, gamma=0.5), batch 64, 12 epochs;
`mlflow.log_metrics` per epoch: train_loss, train_acc, test_loss, test_acc, lr.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: train_loss 1.43 -> 0.41, test_loss 1.387 -> 0.310, test_acc 0.235 -> 0.890 after 12 epochs (flat
near chance for the first two epochs, then rising steadily as the lr halves every 3 epochs, with one dip to
0.763 at epoch 11) (checked; 61 s wall, 30 s CPU, on the 2-core machine shared by four helpers).
"""

import random
import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
_ = "--fix" in sys.argv  # healthy program: --fix accepted and ignored
torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)
ALPHABET = "abcdefghijklmnopqrstuvwxyz ,.;:!?'-\""
CHAR_INDEX = {c: i for i, c in enumerate(ALPHABET)}
L0, CLASSES, N_TRAIN, N_TEST, BATCH, EPOCHS = 128, 4, 2400, 600, 64, 12
LETTERS = "abcdefghijklmnopqrstuvwxyz"

vocab = sorted({"".join(random.choices(LETTERS, k=random.randint(3, 7))) for _ in range(400)})[:300]
random.shuffle(vocab)
topic_words = [vocab[10 * c : 10 * (c + 1)] for c in range(CLASSES)]
shared_words = vocab[10 * CLASSES :]


def make_text(label):
    words = []
    while sum(len(w) + 1 for w in words) < 170:
        word = random.choice(topic_words[label]) if random.random() < 0.4 else random.choice(shared_words)
        if random.random() < 0.08:
            word += random.choice(",.;:!?")
        words.append(word)
    return " ".join(words)


def quantize(text):
    """One-hot characters, read backwards, cut or zero-padded to L0 (Zhang et al. 2015, section 2.2)."""
    x = torch.zeros(len(ALPHABET), L0)
    for pos, ch in enumerate(reversed(text.lower()[:L0])):
        if ch in CHAR_INDEX:
            x[CHAR_INDEX[ch], pos] = 1.0
    return x


def make_split(n):
    labels = [random.randrange(CLASSES) for _ in range(n)]
    texts = [make_text(y) for y in labels]
    return torch.stack([quantize(t) for t in texts]), torch.tensor(labels)


class CharCNN(nn.Module):
    def __init__(self, n_chars, n_classes, features=64, fc=128):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(n_chars, features, 7),
            nn.ReLU(),
            nn.MaxPool1d(3),
            nn.Conv1d(features, features, 7),
            nn.ReLU(),
            nn.MaxPool1d(3),
            nn.Conv1d(features, features, 3),
            nn.ReLU(),
            nn.Conv1d(features, features, 3),
            nn.ReLU(),
            nn.Conv1d(features, features, 3),
            nn.ReLU(),
            nn.Conv1d(features, features, 3),
            nn.ReLU(),
            nn.MaxPool1d(3),
        )
        self.fc = nn.Sequential(
            nn.Linear(features, fc),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(fc, fc),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(fc, n_classes),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


x_train, y_train = make_split(N_TRAIN)
x_test, y_test = make_split(N_TEST)
model = CharCNN(len(ALPHABET), CLASSES)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)

with mlflow.start_run():
    mlflow.log_params({"l0": L0, "features": 64, "lr": 0.01, "momentum": 0.9, "step_size": 3, "gamma": 0.5})
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(N_TRAIN)
        total_loss, correct = 0.0, 0
        for i in range(0, N_TRAIN, BATCH):
            idx = perm[i : i + BATCH]
            optimizer.zero_grad()
            logits = model(x_train[idx])
            loss = criterion(logits, y_train[idx])
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(1) == y_train[idx]).sum().item()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_test)
            test_loss = criterion(logits, y_test).item()
            test_acc = (logits.argmax(1) == y_test).float().mean().item()
        metrics = {
            "train_loss": total_loss / N_TRAIN,
            "train_acc": correct / N_TRAIN,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": lr,
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
