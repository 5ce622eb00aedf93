"""A small nn.TransformerEncoder text classifier with AdamW and linear warm-up, logged per step.

Report: healthy, in the style of the PyTorch transformer tutorials
  https://pytorch.org/tutorials/beginner/transformer_tutorial.html
Setup: Embedding(300, 32) + learned positions, TransformerEncoder(2 layers, 4 heads, d=32),
mean pooling, Linear(32, 3); AdamW(lr=1e-3, weight_decay=0.01), LambdaLR warm-up over 30 steps,
per-step `train_loss` and `lr` every 5 steps, per-epoch val_loss / val_acc.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_acc ~0.95 after 6 epochs.
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

VOCAB, SEQ = 300, 24


def make(n):
    x = torch.randint(3, VOCAB, (n, SEQ))
    y = torch.randint(0, 3, (n,))
    for k in range(2):
        x[torch.arange(n), torch.randint(0, SEQ, (n,))] = y
    return x, y


x_train, y_train = make(1500)
x_val, y_val = make(300)


class TextTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 32)
        self.pos = nn.Parameter(torch.zeros(1, SEQ, 32))
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.encoder(self.emb(x) + self.pos).mean(1))


model = TextTransformer()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 30))
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    step = 0
    for epoch in range(6):
        model.train()
        perm = torch.randperm(1500)
        for i in range(0, 1500, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step % 5 == 0:
                mlflow.log_metrics({"train_loss": loss.item(), "lr": scheduler.get_last_lr()[0]}, step=step)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"val_loss": val_loss, "val_acc": val_acc}, step=step)
        print(epoch, val_loss, val_acc)
