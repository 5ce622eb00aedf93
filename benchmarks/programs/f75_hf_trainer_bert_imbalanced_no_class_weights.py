"""HF Trainer on a 1:10 imbalanced binary text task with the plain cross-entropy: the model always says "majority".

Report: ThilinaRajapakse/simpletransformers issue #280 "Class Imbalance problem" (a BERT binary classifier
  on a dataset with about 1:10 positives "most of the time classifying all classes into the majority
  class"; the maintainer: class weights are what to change)
  https://github.com/ThilinaRajapakse/simpletransformers/issues/280
Setup: support tickets as token ids (length 24, vocabulary 200), label "escalate" for 9% of them; an
escalation cue token appears in 75% of the escalated tickets and in 8% of the others (so P(escalate |
cue) is ~0.48: a model minimising the unweighted loss never predicts the minority class); a tiny
BertForSequenceClassification (2 layers, hidden 32) from a BertConfig, HF Trainer, lr 1e-3 with 20
warm-up steps, batch 32, 2000 training / 600 evaluation tickets, 4 epochs, eval each epoch
(eval_loss, eval_accuracy, eval_f1, eval_recall for the minority class), logging_steps=10, report_to mlflow.
Expected first: class_imbalance
Acceptable in top 3: -
Symptom: plateau, loss_metric_disagreement
Fixed (--fix, a Trainer subclass whose compute_loss uses CrossEntropyLoss(weight=inverse class frequency)):
eval_f1 0.589, eval_recall 0.745, eval_accuracy 0.912 after 4 epochs (buggy: eval_f1 0.0 and eval_recall
0.0, the minority class never predicted, eval_accuracy 0.915 = the majority's share, eval_loss 0.290 near
the label entropy 0.29) (checked; ~11 s of training, ~30 s in all, OMP_NUM_THREADS=1).
"""

import sys
import tempfile

import mlflow
import numpy as np
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
CUE = 7


class Tickets(torch.utils.data.Dataset):
    def __init__(self, n):
        self.labels = (rng.random(n) < 0.09).astype(np.int64)
        self.ids = rng.integers(10, 200, size=(n, 24))
        self.ids[:, 0] = 1  # [CLS]
        has_cue = np.where(self.labels == 1, rng.random(n) < 0.75, rng.random(n) < 0.08)
        for i in np.flatnonzero(has_cue):
            self.ids[i, rng.integers(1, 24)] = CUE

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {
            "input_ids": torch.tensor(self.ids[i]),
            "attention_mask": torch.ones(24, dtype=torch.long),
            "labels": torch.tensor(self.labels[i]),
        }


def metrics(p):
    pred, y = p.predictions.argmax(-1), p.label_ids
    tp = int(((pred == 1) & (y == 1)).sum())
    precision = tp / max(int((pred == 1).sum()), 1)
    recall = tp / max(int((y == 1).sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    return {"accuracy": float((pred == y).mean()), "f1": f1, "recall": recall}


class WeightedTrainer(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = nn.CrossEntropyLoss(weight=CLASS_WEIGHTS.to(outputs.logits.device))(outputs.logits, labels)
        return (loss, outputs) if return_outputs else loss


train, evaluation = Tickets(2000), Tickets(600)
counts = np.bincount(train.labels, minlength=2)
CLASS_WEIGHTS = torch.tensor(len(train) / (2 * counts), dtype=torch.float32)
print("label counts", counts, "class weights", CLASS_WEIGHTS)

config = BertConfig(
    vocab_size=200,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=32,
    num_labels=2,
)
args = TrainingArguments(
    output_dir=tempfile.mkdtemp(),
    learning_rate=1e-3,
    warmup_steps=20,
    num_train_epochs=4,
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
trainer_cls = WeightedTrainer if FIX else Trainer
trainer = trainer_cls(
    model=BertForSequenceClassification(config),
    args=args,
    train_dataset=train,
    eval_dataset=evaluation,
    compute_metrics=metrics,
)
trainer.train()
print(trainer.evaluate())
