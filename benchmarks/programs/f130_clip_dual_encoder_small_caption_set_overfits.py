"""A CLIP-style dual encoder (image encoder + text encoder, projection heads, the symmetric contrastive loss with soft targets) trained on a small image-caption set: the validation loss bottoms out within a few epochs and then climbs while the training loss keeps falling.

Report: moein-shariatnia/OpenAI-CLIP issue #9 "Train-Validation Loss" ("While training this clip model I
  observed the validation loss increases and never decreases"; the author: "As the used models are rather
  small and the dataset limited, I believe the models start overfitting the dataset very soon in the
  training") https://github.com/moein-shariatnia/OpenAI-CLIP/issues/9
Setup: as the repo's CLIPModel: an image encoder and a text encoder, each followed by its ProjectionHead
(Linear -> GELU -> Linear -> Dropout(0.1) -> residual -> LayerNorm, projection_dim 256), logits =
text_embeddings @ image_embeddings.T / temperature (1.0), soft targets = softmax((images_similarity +
texts_similarity) / 2), loss = mean of the two cross-entropies; AdamW with the repo's parameter groups
(image encoder 1e-4, text encoder 1e-5, heads 1e-3, weight decay 1e-3), ReduceLROnPlateau(mode="min",
patience=1, factor=0.8) on the validation loss, batch 32, 80/20 split. Scaled to a CPU and to no
downloads: the "images" are 128-d feature vectors and the captions 12-token sentences, both drawn from a
hidden scene (object, colour, count, place, 4 x 8 x 4 x 6 words), image encoder an MLP 128-512-512
and text encoder an embedding + mean-pooled 2-layer MLP (both trained from scratch, as with
`pretrained=False`); image noise large enough that a pair is only partly predictable from the scene;
480 training / 120 validation pairs, 25 epochs; per-epoch train_loss / valid_loss /
lr with mlflow.log_metrics.
Expected first: dataset_too_small
Acceptable in top 3: no_regularization
Symptom: overfitting
Fixed (--fix, the remedy the answer implies: ten times more captioned images from the same source, 4800 /
1200 pairs, same model and epochs): valid_loss 2.36 -> 0.99 -> 0.75 -> 0.58 (best 0.572 at epoch 21),
train_loss 0.054 (buggy: valid_loss 13.1 -> 2.63 at epoch 9, then up every epoch but one to 3.28, +25%,
while train_loss falls 17.6 -> 0.045; ReduceLROnPlateau cut the rate to 1.7e-4) (checked; 23 s wall /
15 s CPU buggy, 122 s wall / 71 s CPU for the ten-times-larger fix on a shared 2-core machine).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(42)
rng = np.random.default_rng(42)

N_PAIRS = 6000 if FIX else 600
OBJ, COL, CNT, PLACE = 4, 8, 4, 6
VOCAB, SEQ, IMG_DIM = 80, 12, 128
img_basis = rng.normal(0, 1, (OBJ + COL + CNT + PLACE, IMG_DIM))
fillers = np.arange(OBJ + COL + CNT + PLACE, VOCAB)  # "a", "the", "is", "on", ... and rarer words


def scenes(n):
    s = np.stack([rng.integers(0, k, n) for k in (OBJ, COL, CNT, PLACE)], 1)
    offsets = np.array([0, OBJ, OBJ + COL, OBJ + COL + CNT])
    onehot_ids = s + offsets
    images = img_basis[onehot_ids].sum(1) + rng.normal(0, 3.0, (n, IMG_DIM))  # a noisy rendering of the scene
    captions = rng.choice(fillers, (n, SEQ))
    for k in range(n):  # the four content words at random places among filler words
        pos = rng.choice(SEQ, 4, replace=False)
        captions[k, pos] = onehot_ids[k]
        drop = rng.random() < 0.3  # some captions leave one detail out
        if drop:
            captions[k, pos[rng.integers(4)]] = rng.choice(fillers)
    return torch.tensor(images, dtype=torch.float32), torch.tensor(captions)


images, captions = scenes(N_PAIRS)
n_train = int(0.8 * N_PAIRS)
train_idx, valid_idx = torch.arange(n_train), torch.arange(n_train, N_PAIRS)


class ProjectionHead(nn.Module):
    def __init__(self, embedding_dim, projection_dim=256, dropout=0.1):
        super().__init__()
        self.projection = nn.Linear(embedding_dim, projection_dim)
        self.gelu = nn.GELU()
        self.fc = nn.Linear(projection_dim, projection_dim)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(projection_dim)

    def forward(self, x):
        projected = self.projection(x)
        x = self.dropout(self.fc(self.gelu(projected)))
        return self.layer_norm(x + projected)


class TextEncoder(nn.Module):
    def __init__(self, dim=256):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, tokens):
        return self.mlp(self.embedding(tokens).mean(1))


class CLIPModel(nn.Module):
    def __init__(self, temperature=1.0):
        super().__init__()
        self.image_encoder = nn.Sequential(nn.Linear(IMG_DIM, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU())
        self.text_encoder = TextEncoder()
        self.image_projection = ProjectionHead(embedding_dim=512)
        self.text_projection = ProjectionHead(embedding_dim=256)
        self.temperature = temperature

    def forward(self, image, text):
        image_embeddings = self.image_projection(self.image_encoder(image))
        text_embeddings = self.text_projection(self.text_encoder(text))
        logits = (text_embeddings @ image_embeddings.T) / self.temperature
        images_similarity = image_embeddings @ image_embeddings.T
        texts_similarity = text_embeddings @ text_embeddings.T
        targets = F.softmax((images_similarity + texts_similarity) / 2 * self.temperature, dim=-1)
        texts_loss = cross_entropy(logits, targets)
        images_loss = cross_entropy(logits.T, targets.T)
        return ((images_loss + texts_loss) / 2.0).mean()


def cross_entropy(preds, targets):
    return (-targets * nn.LogSoftmax(dim=-1)(preds)).sum(1)


model = CLIPModel()
params = [
    {"params": model.image_encoder.parameters(), "lr": 1e-4},
    {"params": model.text_encoder.parameters(), "lr": 1e-5},
    {
        "params": list(model.image_projection.parameters()) + list(model.text_projection.parameters()),
        "lr": 1e-3,
        "weight_decay": 1e-3,
    },
]
optimizer = torch.optim.AdamW(params, weight_decay=0.0)
lr_scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", patience=1, factor=0.8)


def run_epoch(indices, train):
    model.train(train)
    total, count = 0.0, 0
    order = indices[torch.randperm(len(indices))] if train else indices
    for batch in order.split(32):
        if len(batch) < 2:
            continue
        with torch.set_grad_enabled(train):
            loss = model(images[batch], captions[batch])
        if train:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        total += loss.item() * len(batch)
        count += len(batch)
    return total / count


with mlflow.start_run():
    mlflow.log_params(
        {
            "n_train": len(train_idx),
            "n_valid": len(valid_idx),
            "batch_size": 32,
            "temperature": 1.0,
            "projection_dim": 256,
            "epochs": 25,
        }
    )
    best_loss = float("inf")
    for epoch in range(25):
        train_loss = run_epoch(train_idx, True)
        valid_loss = run_epoch(valid_idx, False)
        if valid_loss < best_loss:
            best_loss = valid_loss  # the repo saves best.pt here
        lr_scheduler.step(valid_loss)
        lr = optimizer.param_groups[2]["lr"]
        mlflow.log_metrics({"train_loss": train_loss, "valid_loss": valid_loss, "lr": lr}, step=epoch)
        print(f"Epoch {epoch + 1}: train_loss {train_loss:.4f} valid_loss {valid_loss:.4f} lr {lr:.2e}")
