"""HF Trainer training a small T5 (from a T5Config) on a text-to-text task at the Trainer's default learning_rate=5e-5, the BERT fine-tuning rate: T5 wants a rate about ten times higher, and after 4 epochs the model has barely left the token frequencies.

Report: SunnyGJing/t5-pegasus-chinese issue #4 "关于finetune的学习率" ("the fine-tuning learning rate in your
  script is 2e-4, isn't that too large? ... 3e-5 is usual"; answer: "we commonly use 5e-5, for BERT. But
  because of the architecture difference, T5's learning rate has to be 10 times larger, so 2e-4 is used")
  https://github.com/SunnyGJing/t5-pegasus-chinese/issues/4 (the same advice made sillsdev/silnlp pull request
  #336 "Add default learning rate for T5 models" https://github.com/sillsdev/silnlp/pull/336; the T5 paper
  fine-tunes at a constant 1e-3)
Setup: a text-to-text "spelling" task: a source line of 8-12 word ids (vocabulary 2..49) is answered by the
same words, each rewritten through a fixed substitution table, then EOS (id 1); pad 0
labelled -100; T5ForConditionalGeneration(d_model 64, d_kv 16, d_ff 128, 2 encoder + 2 decoder layers,
4 heads) from a T5Config, HF Trainer with its defaults (AdamW, linear decay, learning_rate=5e-5 as left
by TrainingArguments), batch 32, 2,400 training / 400 evaluation lines, 4 epochs = 300 steps,
logging_steps=10, eval each epoch with teacher-forced token accuracy from compute_metrics, report_to mlflow.
Expected first: learning_rate_too_low
Acceptable in top 3: -
Symptom: not_converged, plateau
Fixed (--fix, learning_rate=1e-3, ten and more times the BERT rate as the answer says and as the T5 paper
fine-tunes): eval_loss 0.709 ->
0.086 -> 0.043 -> 0.038 and eval_token_accuracy 0.88 -> 1.0 from epoch 2, training loss 3.72 at step 10 ->
0.09 (buggy: training loss 5.30 at step 10 -> 2.63 at step 300, eval_loss 3.38 -> 2.73 -> 2.49 -> 2.42,
eval_token_accuracy 0.23 -> 0.34, i.e. only the EOS third of the label tokens right: neither the topic
nor the sentiment word is learned) (checked; 56 s / 80 s wall, 26 s / 24 s CPU, on a 2-core machine
loaded by two other helpers, OMP_NUM_THREADS=1).
"""

import sys

import mlflow
import numpy as np
import torch
from transformers import T5Config, T5ForConditionalGeneration, Trainer, TrainingArguments

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
VOCAB, PAD, EOS, PREFIX, MAX_LEN = 120, 0, 1, 2, 12
LABEL_WORDS, TOPIC_WORDS, SENTIMENT_WORDS, FILLER = 3, 10, 30, 42  # 7 label words, 20 + 12 keywords


class ReviewDataset(torch.utils.data.Dataset):
    """ "review: <words>" -> "<topic word> <sentiment word> </s>", T5's text-to-text classification."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(8, MAX_LEN + 1, (), generator=g))
            src = torch.randint(FILLER, VOCAB, (length,), generator=g)
            topic, sentiment = int(torch.randint(0, 5, (), generator=g)), int(torch.randint(0, 2, (), generator=g))
            where = torch.randperm(length - 1, generator=g)[:2] + 1
            src[0] = PREFIX
            src[where[0]] = TOPIC_WORDS + 4 * topic + int(torch.randint(0, 4, (), generator=g))
            src[where[1]] = SENTIMENT_WORDS + 6 * sentiment + int(torch.randint(0, 6, (), generator=g))
            tgt = torch.tensor([LABEL_WORDS + topic, LABEL_WORDS + 5 + sentiment, EOS])
            self.items.append((src, tgt))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        src, tgt = self.items[i]
        input_ids = torch.full((MAX_LEN,), PAD)
        input_ids[: len(src)] = src
        return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(), "labels": tgt}


def compute_metrics(eval_pred):
    logits, labels = eval_pred
    if isinstance(logits, tuple):
        logits = logits[0]
    keep = labels != -100
    return {"token_accuracy": float((np.argmax(logits, axis=-1)[keep] == labels[keep]).mean())}


config = T5Config(
    vocab_size=VOCAB,
    d_model=64,
    d_kv=16,
    d_ff=128,
    num_layers=2,
    num_decoder_layers=2,
    num_heads=4,
    pad_token_id=PAD,
    eos_token_id=EOS,
    decoder_start_token_id=PAD,
)
model = T5ForConditionalGeneration(config)
extra = {"learning_rate": 1e-3} if FIX else {}  # the bug: TrainingArguments' default 5e-5
args = TrainingArguments(
    output_dir="out",
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
    **extra,
)
trainer = Trainer(
    model=model,
    args=args,
    train_dataset=ReviewDataset(2400, seed=1),
    eval_dataset=ReviewDataset(400, seed=2),
    compute_metrics=compute_metrics,
    preprocess_logits_for_metrics=lambda logits, labels: logits[0] if isinstance(logits, tuple) else logits,
)
trainer.train()
print(trainer.evaluate())
