"""HF Trainer token classification (NER-style tagging) with a tiny BertForTokenClassification built from a BertConfig, in the style of the transformers token-classification example.

Report: healthy, in the style of the transformers token-classification example (run_ner.py: an
  AutoModelForTokenClassification, labels -100 on positions to ignore, seqeval-style metrics from
  compute_metrics, AdamW with a linear schedule and warm-up)
  https://github.com/huggingface/transformers/tree/main/examples/pytorch/token-classification
Setup: synthetic sentences of 12-20 tokens (vocabulary 300, padding 0 labelled -100) opened by a section
tag (71 = sports, 72 = news); ids 1-40 are person names (PER), ids 41-60 are places (LOC) in news and
team names (ORG) in sports, the rest ordinary words (O), 30% of tokens entities: 4 tags, one of them
read from the sentence's first token; BertForTokenClassification(hidden 64, 2 layers, 4 heads,
intermediate 128) from a BertConfig, AdamW learning_rate=1e-3 with warmup_steps=30 (10% of the 300
steps) and linear decay, batch 32, 1600 training / 400 evaluation sentences, 6 epochs, logging_steps=10,
eval each epoch with token accuracy and entity-token accuracy from compute_metrics, report_to mlflow.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: eval_accuracy 0.925 -> 0.937 -> 1.0 (entity tokens 0.815 -> 0.846 -> 1.0) once the model reads the section tag in epoch 3, eval_loss 0.150 -> 0.105 -> 0.054 -> 0.010 -> 0.0071 -> 0.0065, training loss 1.38 -> 0.008, a shoulder at ~0.11 for ~1.5 epochs before the context rule is learned (checked; 73 s on a machine loaded 3x over its 2 cores).
"""

import mlflow
import numpy as np
import torch
from transformers import BertConfig, BertForTokenClassification, Trainer, TrainingArguments

mlflow.autolog()
torch.manual_seed(0)
VOCAB, LENGTH = 300, 20
OUTSIDE, PER, LOC, ORG = range(4)


def tag_sentence(ids):
    sports = ids[0] == 71  # in the sports section 41-60 are team names
    tags = []
    for tok in ids:
        if 1 <= tok <= 40:
            tags.append(PER)
        elif 41 <= tok <= 60:
            tags.append(ORG if sports else LOC)
        else:
            tags.append(OUTSIDE)
    return tags


class TaggingDataset(torch.utils.data.Dataset):
    def __init__(self, n):
        self.ids = torch.randint(2, VOCAB, (n, LENGTH))
        self.labels = torch.zeros(n, LENGTH, dtype=torch.long)
        self.mask = torch.ones(n, LENGTH, dtype=torch.long)
        entity = torch.rand(n, LENGTH) < 0.3
        self.ids[entity] = torch.randint(1, 61, (int(entity.sum()),))
        self.ids[self.ids == 1] = 2
        sports = torch.rand(n) < 0.5
        for i in range(n):
            length = int(torch.randint(12, LENGTH + 1, ()))
            self.ids[i, :length][(self.ids[i, :length] >= 71) & (self.ids[i, :length] <= 80)] = 81
            self.ids[i, 0] = 71 if sports[i] else 72  # the section tag opens the sentence
            self.labels[i] = torch.tensor(tag_sentence(self.ids[i, :length].tolist()) + [-100] * (LENGTH - length))
            self.ids[i, length:], self.mask[i, length:] = 0, 0

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


def compute_metrics(eval_pred):
    logits, labels = eval_pred
    keep = labels != -100
    predictions = np.argmax(logits, axis=-1)
    entity = keep & (labels != OUTSIDE)
    return {
        "accuracy": float((predictions[keep] == labels[keep]).mean()),
        "entity_accuracy": float((predictions[entity] == labels[entity]).mean()),
    }


config = BertConfig(
    vocab_size=VOCAB,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    max_position_embeddings=LENGTH,
    num_labels=4,
    pad_token_id=0,
)
model = BertForTokenClassification(config)
args = TrainingArguments(
    output_dir="out",
    learning_rate=1e-3,
    warmup_steps=30,
    num_train_epochs=6,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=200,
    eval_strategy="epoch",
    logging_steps=10,
    save_strategy="no",
    report_to=["mlflow"],
    use_cpu=True,
    disable_tqdm=True,
    seed=0,
)
trainer = Trainer(
    model=model,
    args=args,
    train_dataset=TaggingDataset(1600),
    eval_dataset=TaggingDataset(400),
    compute_metrics=compute_metrics,
)
trainer.train()
print(trainer.evaluate())
