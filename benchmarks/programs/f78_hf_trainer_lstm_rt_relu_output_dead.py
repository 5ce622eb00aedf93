"""A Bi-LSTM peptide retention-time regressor, trained with the HF Trainer, ends in Linear -> ReLU: the single output unit starts negative for every peptide, its gradient is zero, and it predicts 0 for ever.

Report: ProteomicsML/ProteomicsML pull request #203 "Do not use ReLU activation for the final
  regression layer" ("I got LSTM network returning constantly 0 for all peptides in validation
  set. The reason seems to be using ReLU activation at the final linear layer. In case of unlucky
  initialization the (pre-ReLU) output of the final linear layer can be always or almost always
  negative vanishing the gradient") https://github.com/ProteomicsML/ProteomicsML/pull/203
Setup: peptides of 7-30 residues over the 20 amino acids, pre-padded with 0 to 30 (as the
tutorials' pad_sequences does), retention time = a sum of per-residue hydrophobicity
coefficients plus a length term and noise, min-max normalised to [0, 1] as in the ProteomicsML
retention-time tutorials; Embedding(22, 8) -> Bi-LSTM(32) -> Dropout(0.25) -> Bi-LSTM(32) ->
Linear(64, 1) -> ReLU; MSE; HF Trainer with learning_rate=5e-3, batch 64, 3 epochs, logging_steps=10,
eval each epoch (eval_loss, eval_mae), report_to mlflow. The seed is one whose initial output is
negative for every peptide (the report's "unlucky initialization"): of seeds 0-39, 13 start with
the output negative on all 2400 training peptides, seed 33 by the widest margin (max -0.20).
Expected first: dead_relu
Acceptable in top 3: final_layer_activation
Symptom: plateau
Fixed (--fix, the ReLU removed: a plain Linear output, as the pull request does): eval_loss 0.0151 ->
0.0121, eval_mae 0.088 after 3 epochs (targets' variance ~0.027) (buggy: every prediction 0, grad_norm 0
at every logged step, loss ~0.40 and eval_loss 0.412 = the mean squared target in all 3 epochs, eval_mae
0.63) (checked; 83 s / 62 s wall on a loaded 2-core machine, 45 s / 44 s CPU).
"""

import sys
import tempfile

import mlflow
import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainingArguments

mlflow.autolog()
FIX = "--fix" in sys.argv
SEED = 33
torch.manual_seed(SEED)
rng = np.random.default_rng(0)
LENGTH = 30
hydrophobicity = rng.normal(0.0, 1.0, 21)  # index 0 = padding


class PeptideDataset(torch.utils.data.Dataset):
    def __init__(self, n):
        lengths = rng.integers(7, LENGTH + 1, n)
        self.ids = np.zeros((n, LENGTH), dtype=np.int64)
        for i, length in enumerate(lengths):
            self.ids[i, LENGTH - length :] = rng.integers(1, 21, length)  # pre-padding
        rt = hydrophobicity[self.ids].sum(1) + 0.15 * lengths + rng.normal(0.0, 0.5, n)
        self.rt = rt

    def normalise(self, lo, hi):
        self.y = ((self.rt - lo) / (hi - lo)).astype(np.float32)

    def __len__(self):
        return len(self.rt)

    def __getitem__(self, i):
        return {"input_ids": torch.tensor(self.ids[i]), "labels": torch.tensor(self.y[i])}


class RTModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(22, 8)
        self.lstm1 = nn.LSTM(8, 32, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.25)
        self.lstm2 = nn.LSTM(64, 32, batch_first=True, bidirectional=True)
        self.output = nn.Linear(64, 1)
        self.activation = nn.Identity() if FIX else nn.ReLU()

    def forward(self, input_ids, labels=None):
        x, _ = self.lstm1(self.embedding(input_ids))
        _, (h, _) = self.lstm2(self.dropout(x))
        pred = self.activation(self.output(torch.cat([h[0], h[1]], 1))).squeeze(1)
        loss = nn.functional.mse_loss(pred, labels) if labels is not None else None
        return {"loss": loss, "logits": pred}


def metrics(p):
    return {"mae": float(np.abs(p.predictions.reshape(-1) - p.label_ids).mean())}


train, val = PeptideDataset(2400), PeptideDataset(600)
lo, hi = min(train.rt.min(), val.rt.min()), max(train.rt.max(), val.rt.max())
train.normalise(lo, hi)
val.normalise(lo, hi)
model = RTModel()
args = TrainingArguments(
    output_dir=tempfile.mkdtemp(),
    learning_rate=5e-3,
    num_train_epochs=3,
    per_device_train_batch_size=64,
    per_device_eval_batch_size=200,
    eval_strategy="epoch",
    logging_steps=10,
    save_strategy="no",
    report_to=["mlflow"],
    use_cpu=True,
    disable_tqdm=True,
    seed=SEED,
)
trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val, compute_metrics=metrics)
trainer.train()
print(trainer.evaluate())
