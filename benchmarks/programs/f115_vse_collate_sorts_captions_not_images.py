"""A VSE++ image-caption embedding whose own collate_fn sorts the captions by length for pack_padded_sequence but leaves the images in their original order: within every batch each caption is paired with some other image, and the hinge loss over in-batch negatives has nothing to learn.

Report: fartashf/vsepp pull request #36 "pass enforce_sorted to False" (a reimplementation that sorted the
  captions for packing: "I found in my implementation I was sorting but then not getting the sort back ...
  embeddings in a batch seemed to be mixed up"; the repository's own collate_fn sorts the (image, caption)
  pairs together: `data.sort(key=lambda x: len(x[1]), reverse=True)`) https://github.com/fartashf/vsepp/pull/36
Setup: VSE++ with precomputed image features: EncoderImagePrecomp (Linear(256, 128), l2-normalised) and
EncoderText (Embedding(vocab 160, 64), GRU(64, 128) over pack_padded_sequence, last hidden state,
l2-normalised), ContrastiveLoss(margin=0.2, max_violation=True) summed over the batch, Adam(lr=2e-4),
clip_grad_norm_(2.0), batch 128 (the last partial training batch dropped); synthetic pairs: each image is 2-3 of 40 concepts (feature = sum of concept
vectors + noise), its caption names them among 3-12 filler words (lengths independent of the concepts),
4,000 training / 500 validation pairs, 12 epochs; `loss` every 10 steps (the batch's summed hinge loss, as
VSE++ logs `Le`), per epoch val_loss and recall@1 / recall@5 (caption retrieval, image to text) and rsum
(i2t + t2i R@1 + R@5) on the validation pairs, both loaders through the same collate_fn.
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: loss_metric_disagreement, plateau
Fixed (--fix, the pairs sorted together as VSE++'s collate_fn does): R@1 0.4 -> 7.2 -> 14.0 -> 24.6, R@5 2.6 ->
49.6, rsum 5.0 -> 82.8 -> 143.8 after 12 epochs and still rising, val_loss 68.1 -> 50.4, `loss` 78.2 -> 51.1
(buggy: R@1 0.0-0.4 and R@5 0.4-1.4 at every epoch, chance being 0.2 and 1.0 among 500 pairs, rsum 1.8 at the
end; the losses still fall, `loss` 78.7 -> 53.7 and val_loss 69.6 -> 52.4, towards 51.2 = 2 x 0.2 x 128, the
summed margin when every score is the same: the embeddings collapse instead of matching) (checked; ~30 s CPU
each, 285 s wall on a 2-core machine loaded by three helpers, OMP_NUM_THREADS=1, recorder off).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
N_CONCEPTS, FEAT, VOCAB, EMBED = 40, 256, 160, 128
concept_vecs = rng.normal(size=(N_CONCEPTS, FEAT)) / np.sqrt(3)
# word ids: 1..40 name a concept, 41..159 are filler words; 0 pads
FILLER = np.arange(N_CONCEPTS + 1, VOCAB)


def make_pairs(n):
    pairs = []
    for _ in range(n):
        k = rng.integers(2, 4)
        concepts = rng.choice(N_CONCEPTS, size=k, replace=False)
        image = concept_vecs[concepts].sum(0) + 0.5 * rng.normal(size=FEAT)
        words = list(concepts + 1) + list(rng.choice(FILLER, size=rng.integers(3, 13)))
        rng.shuffle(words)
        pairs.append((torch.tensor(image, dtype=torch.float32), torch.tensor(words, dtype=torch.long)))
    return pairs


def collate_fn(data):
    """Build mini-batch tensors from a list of (image, caption) tuples."""
    if FIX:
        data.sort(key=lambda x: len(x[1]), reverse=True)
    images, captions = zip(*data)
    images = torch.stack(images, 0)
    if not FIX:
        captions = sorted(captions, key=len, reverse=True)  # pack_padded_sequence wants them longest first
    lengths = [len(cap) for cap in captions]
    targets = torch.zeros(len(captions), max(lengths)).long()
    for i, cap in enumerate(captions):
        targets[i, : lengths[i]] = cap
    return images, targets, lengths


def l2norm(x):
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)


class EncoderImagePrecomp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(FEAT, EMBED)
        r = np.sqrt(6.0) / np.sqrt(FEAT + EMBED)
        nn.init.uniform_(self.fc.weight, -r, r)
        nn.init.zeros_(self.fc.bias)

    def forward(self, images):
        return l2norm(self.fc(images))


class EncoderText(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64)
        self.rnn = nn.GRU(64, EMBED, batch_first=True)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(self.embed(x), lengths, batch_first=True)
        _, hidden = self.rnn(packed)
        return l2norm(hidden[-1])


class ContrastiveLoss(nn.Module):
    def __init__(self, margin=0.2, max_violation=True):
        super().__init__()
        self.margin, self.max_violation = margin, max_violation

    def forward(self, im, s):
        scores = im @ s.t()
        diagonal = scores.diag().view(im.size(0), 1)
        cost_s = (self.margin + scores - diagonal.expand_as(scores)).clamp(min=0)
        cost_im = (self.margin + scores - diagonal.t().expand_as(scores)).clamp(min=0)
        mask = torch.eye(scores.size(0), dtype=torch.bool)
        cost_s, cost_im = cost_s.masked_fill(mask, 0), cost_im.masked_fill(mask, 0)
        if self.max_violation:
            cost_s, cost_im = cost_s.max(1)[0], cost_im.max(0)[0]
        return cost_s.sum() + cost_im.sum()


def recalls(img_embs, cap_embs):
    sims = img_embs @ cap_embs.t()
    ranks_i2t = (sims > sims.diag().unsqueeze(1)).sum(1)
    ranks_t2i = (sims.t() > sims.diag().unsqueeze(1)).sum(1)
    r = lambda ranks, k: 100.0 * (ranks < k).float().mean().item()  # noqa: E731
    return r(ranks_i2t, 1), r(ranks_i2t, 5), r(ranks_t2i, 1), r(ranks_t2i, 5)


train_loader = torch.utils.data.DataLoader(
    make_pairs(4000), batch_size=128, shuffle=True, collate_fn=collate_fn, drop_last=True
)
val_loader = torch.utils.data.DataLoader(make_pairs(500), batch_size=128, shuffle=False, collate_fn=collate_fn)
img_enc, txt_enc = EncoderImagePrecomp(), EncoderText()
params = list(txt_enc.parameters()) + list(img_enc.parameters())
criterion = ContrastiveLoss(margin=0.2, max_violation=True)
optimizer = torch.optim.Adam(params, lr=2e-4)

with mlflow.start_run():
    mlflow.log_params(
        {"margin": 0.2, "max_violation": True, "learning_rate": 2e-4, "batch_size": 128, "grad_clip": 2.0}
    )
    step = 0
    for epoch in range(12):
        img_enc.train(), txt_enc.train()
        for images, captions, lengths in train_loader:
            loss = criterion(img_enc(images), txt_enc(captions, lengths))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 2.0)
            optimizer.step()
            step += 1
            if step % 10 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
        img_enc.eval(), txt_enc.eval()
        with torch.no_grad():
            embs = [(img_enc(i), txt_enc(c, lens)) for i, c, lens in val_loader]
            val_loss = sum(criterion(i, c).item() for i, c in embs) / len(embs)
            r1, r5, r1i, r5i = recalls(torch.cat([i for i, _ in embs]), torch.cat([c for _, c in embs]))
        metrics = {"val_loss": val_loss, "r1": r1, "r5": r5, "rsum": r1 + r5 + r1i + r5i}
        mlflow.log_metrics(metrics, step=step)
        print(epoch, f"loss {loss.item():.2f}", {k: round(v, 2) for k, v in metrics.items()})
