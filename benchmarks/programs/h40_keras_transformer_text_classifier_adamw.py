"""The Keras example "Text classification with Transformer" ported to PyTorch: token + position embedding, one Transformer block, average pooling, AdamW.

Report: healthy, in the style of the keras.io example "Text classification with Transformer"
  (TokenAndPositionEmbedding, TransformerBlock(embed_dim=32, num_heads=2, ff_dim=32, rate 0.1),
  GlobalAveragePooling1D, Dropout(0.1), Dense(20, relu), Dropout(0.1), Dense(2, softmax),
  sparse categorical cross-entropy, history loss / accuracy / val_loss / val_accuracy per epoch)
  https://keras.io/examples/nlp/text_classification_with_transformer/
Setup: synthetic movie reviews of 40 tokens over a vocabulary of 200 (ids 1-20 positive words,
21-40 negative words, 42-199 neutral filler): a review of label 1 (0) carries 6-12 sentiment words,
each meant positive with probability 0.8 (0.2); "not" (id 41) precedes 15% of them and inverts the
word; 5% of labels flipped; 4000 training / 1000 validation reviews; the
Keras block in PyTorch (nn.MultiheadAttention + post-norm feed-forward, embed 32, 2 heads, ff 32,
dropout 0.1), CrossEntropyLoss, AdamW(lr=1e-3, weight_decay=0.01) (the example compiles with
"adam"), batch 32, 6 epochs; per-epoch loss / accuracy / val_loss / val_accuracy.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_accuracy 0.730 -> 0.818 and val_loss 0.544 -> 0.408 over 6 epochs, still creeping down (train
loss 0.357, accuracy 0.860; the flipped labels alone cap accuracy at 0.95) (13 s).
"""

import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
VOCAB, MAXLEN, NOT = 200, 40, 41


def make_reviews(n):
    x = torch.randint(42, VOCAB, (n, MAXLEN))
    y = torch.randint(0, 2, (n,))
    for i in range(n):
        k = int(torch.randint(6, 13, ()))
        positions = torch.randperm(MAXLEN - 1)[:k] + 1
        for p in positions.tolist():
            meant_positive = bool(torch.rand(()) < (0.8 if y[i] == 1 else 0.2))
            negated = bool(torch.rand(()) < 0.15)
            positive_word = meant_positive != negated
            x[i, p] = int(torch.randint(1, 21, ())) if positive_word else int(torch.randint(21, 41, ()))
            if negated:
                x[i, p - 1] = NOT
    flip = torch.rand(n) < 0.05
    y[flip] = 1 - y[flip]
    return x, y


class TransformerBlock(nn.Module):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(embed_dim, ff_dim), nn.ReLU(), nn.Linear(ff_dim, embed_dim))
        self.layernorm1 = nn.LayerNorm(embed_dim, eps=1e-6)
        self.layernorm2 = nn.LayerNorm(embed_dim, eps=1e-6)
        self.dropout1 = nn.Dropout(rate)
        self.dropout2 = nn.Dropout(rate)

    def forward(self, inputs):
        attn_output, _ = self.att(inputs, inputs, inputs, need_weights=False)
        out1 = self.layernorm1(inputs + self.dropout1(attn_output))
        return self.layernorm2(out1 + self.dropout2(self.ffn(out1)))


class TokenAndPositionEmbedding(nn.Module):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = nn.Embedding(vocab_size, embed_dim)
        self.pos_emb = nn.Embedding(maxlen, embed_dim)

    def forward(self, x):
        positions = torch.arange(x.size(1))
        return self.token_emb(x) + self.pos_emb(positions)


class TextClassifier(nn.Module):
    def __init__(self, embed_dim=32, num_heads=2, ff_dim=32):
        super().__init__()
        self.embedding = TokenAndPositionEmbedding(MAXLEN, VOCAB, embed_dim)
        self.transformer_block = TransformerBlock(embed_dim, num_heads, ff_dim)
        self.head = nn.Sequential(
            nn.Dropout(0.1), nn.Linear(embed_dim, 20), nn.ReLU(), nn.Dropout(0.1), nn.Linear(20, 2)
        )

    def forward(self, x):
        x = self.transformer_block(self.embedding(x))
        return self.head(x.mean(dim=1))


x_train, y_train = make_reviews(4000)
x_val, y_val = make_reviews(1000)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True)
model = TextClassifier()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
with mlflow.start_run():
    for epoch in range(6):
        model.train()
        total, correct = 0.0, 0
        for x, y in train_loader:
            optimizer.zero_grad()
            out = model(x)
            loss = criterion(out, y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        history = {"loss": total / 4000, "accuracy": correct / 4000, "val_loss": val_loss, "val_accuracy": val_acc}
        mlflow.log_metrics(history, step=epoch)
        print(f"Epoch {epoch + 1}/6 - " + " - ".join(f"{k}: {v:.4f}" for k, v in history.items()))
