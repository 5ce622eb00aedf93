"""HF Trainer fine-tuning a tiny BERT (from a config) at learning_rate=0.5: collapses to chance.

Report: huggingface/transformers issue #12041 "Why my simple Bert model for text classification
  could not learn anything?" (learning rate far too high for BERT, loss stays at chance)
  https://github.com/huggingface/transformers/issues/12041
Setup as in issue 11: BertForSequenceClassification, 2 layers, hidden 32, from a BertConfig,
HF Trainer, learning_rate=0.5, two classes; eval each epoch.
Expected first: learning_rate_too_high
Acceptable in top 3: -
Symptom: plateau, diverging
Fixed (--fix, learning_rate=1e-3): not rerun; h07 is this program at lr 1e-3 with 10 warm-up steps: training loss 0.69 -> 0.22 in 4 epochs (measured; buggy: stays near ln 2 = 0.69).
"""

import sys

import mlflow
import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)


class ToyDataset(torch.utils.data.Dataset):
    """Sentences of random token ids; label 1 when token 7 occurs."""

    def __init__(self, n):
        self.ids = rng.integers(10, 100, size=(n, 16))
        self.labels = rng.integers(0, 2, size=n)
        for i in np.flatnonzero(self.labels):
            self.ids[i, rng.integers(1, 16)] = 7

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {
            "input_ids": torch.tensor(self.ids[i]),
            "attention_mask": torch.ones(16, dtype=torch.long),
            "labels": torch.tensor(int(self.labels[i])),
        }


def accuracy(p):
    return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}


config = BertConfig(
    vocab_size=100,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=32,
    num_labels=2,
)
model = BertForSequenceClassification(config)
args = TrainingArguments(
    output_dir="out",
    learning_rate=1e-3 if FIX else 0.5,
    num_train_epochs=4,
    per_device_train_batch_size=32,
    eval_strategy="epoch",
    logging_steps=5,
    save_strategy="no",
    report_to=["mlflow"],
    use_cpu=True,
    disable_tqdm=True,
    seed=0,
)
trainer = Trainer(
    model=model, args=args, train_dataset=ToyDataset(800), eval_dataset=ToyDataset(200), compute_metrics=accuracy
)
trainer.train()
print(trainer.evaluate())
