"""HF Seq2SeqTrainer training a tiny T5 built from a T5Config on a synthetic copy task (the source words copied, then EOS), at a constant-ish high rate (3e-3 with the Trainer's AdamW and linear decay, the T5 paper fine-tunes at 1e-3); eval each epoch with generation (predict_with_generate) and exact-match / token accuracy from compute_metrics, report_to mlflow.

Report: healthy, in the style of the transformers seq2seq examples (examples/pytorch/translation/run_translation.py
  and summarization/run_summarization.py: Seq2SeqTrainingArguments with predict_with_generate, labels padded with
  -100, compute_metrics comparing the generated ids with the labels)
  https://github.com/huggingface/transformers/tree/main/examples/pytorch/translation
Setup: source lines "<p1> w1 <p2> w2 ..." of 3-5 words (word ids 3..23, position markers 24..31, pad 0,
zero-padded to 16 with attention_mask), target = the words followed by EOS (id 1), label padding -100 (T5 has
no absolute positions and its cross-attention no position bias: without the markers this tiny model did not
learn to copy, or to reverse, in the CPU budget); T5ForConditionalGeneration(d_model 64, d_kv 16, d_ff 128,
2 encoder + 2 decoder layers, 4 heads) from a T5Config; Seq2SeqTrainer with learning_rate=3e-3,
warmup_steps=20, weight_decay=0.01, batch 32, 1,600 training / 300 evaluation lines, 12 epochs = 600 steps,
logging_steps=10, eval_strategy="epoch", predict_with_generate=True (greedy, generation_max_length=9),
metrics exact_match and token_accuracy (generated words against the label words and EOS), report_to mlflow.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: training loss 3.82 (step 10) -> 2.47 (epoch 1) -> 1.10-1.13 over the last epoch, eval_loss 2.243 ->
1.653 -> 1.345 (epoch 4) -> 1.057 (epoch 8) -> 0.920 at epoch 12, eval_token_accuracy 0.195 -> 0.399 and
eval_exact_match 0.0 -> 0.137 with generation, improving every epoch and slowing as the linear schedule takes
the rate to zero (checked; 131 s wall, 59 s CPU, on the 2-core machine shared by four helpers).
"""

import sys

import mlflow
import numpy as np
import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, T5Config, T5ForConditionalGeneration

mlflow.autolog()
_ = "--fix" in sys.argv  # healthy program: --fix accepted and ignored
torch.manual_seed(0)
torch.set_num_threads(1)
VOCAB, PAD, EOS, FIRST_ID, MAX_SRC, MAX_TGT = 32, 0, 1, 3, 16, 8
WORDS = 21  # word ids 3..23, position markers 24..31


class CopyDataset(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(3, 6, (), generator=g))
            words = torch.randint(FIRST_ID, FIRST_ID + WORDS, (length,), generator=g)
            markers = FIRST_ID + WORDS + torch.arange(length)
            src = torch.stack([markers, words], dim=1).flatten()  # "<p1> w1 <p2> w2 ..."
            self.items.append((src, torch.cat([words, torch.tensor([EOS])])))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        src, tgt = self.items[i]
        input_ids = torch.full((MAX_SRC,), PAD)
        input_ids[: len(src)] = src
        labels = torch.full((MAX_TGT,), -100)
        labels[: len(tgt)] = tgt
        return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(), "labels": labels}


def compute_metrics(eval_preds):
    preds, labels = eval_preds
    if isinstance(preds, tuple):
        preds = preds[0]
    preds = preds[:, 1:]  # drop the decoder start token
    width = max(preds.shape[1], labels.shape[1])
    preds = np.pad(preds, ((0, 0), (0, width - preds.shape[1])), constant_values=PAD)
    labels = np.pad(labels, ((0, 0), (0, width - labels.shape[1])), constant_values=-100)
    preds = np.where(preds == -100, PAD, preds)
    keep = (labels != -100) & (labels != PAD)  # the generated length pads labels with PAD
    token_ok = (preds == labels) | ~keep
    return {
        "exact_match": float(token_ok.all(axis=1).mean()),
        "token_accuracy": float((preds == labels)[keep].mean()),
    }


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
args = Seq2SeqTrainingArguments(
    output_dir="out",
    learning_rate=3e-3,
    warmup_steps=20,
    weight_decay=0.01,
    num_train_epochs=12,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=100,
    eval_strategy="epoch",
    logging_steps=10,
    save_strategy="no",
    predict_with_generate=True,
    generation_max_length=MAX_TGT + 1,
    generation_num_beams=1,
    report_to=["mlflow"],
    use_cpu=True,
    disable_tqdm=True,
    seed=0,
)
trainer = Seq2SeqTrainer(
    model=model,
    args=args,
    train_dataset=CopyDataset(1600, seed=1),
    eval_dataset=CopyDataset(300, seed=2),
    compute_metrics=compute_metrics,
)
trainer.train()
print(trainer.evaluate())
