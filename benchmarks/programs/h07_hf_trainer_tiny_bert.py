"""HF Trainer fine-tuning a tiny BERT built from a BertConfig, at a sane learning rate (1e-3, 10 warm-up steps).

Report: healthy, in the style of the HF text-classification examples
  https://github.com/huggingface/transformers/tree/main/examples/pytorch/text-classification
Setup: BertForSequenceClassification (2 layers, hidden 32, 2 heads) from a config, HF Trainer,
report_to mlflow, eval each epoch, logging_steps=5; the same program at learning_rate=0.5 is f04.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: eval_loss ~0.05, accuracy ~0.99 after 4 epochs.
"""

import mlflow
import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

mlflow.autolog()
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
    learning_rate=1e-3,
    num_train_epochs=4,
    warmup_steps=10,
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
