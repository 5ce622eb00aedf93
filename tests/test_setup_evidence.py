"""The recorder's evidence for the set-up rules, from real tiny training loops: batch
fingerprints, gradient-clipping activity and DataLoader facts, and that none of it changes a
number."""

from __future__ import annotations

import json

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

import mlflow_nnaudit
from mlflow_nnaudit import schema


def _loop(same_batch=False, clip=None, epochs=3, seed=0):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    ds = torch.utils.data.TensorDataset(torch.randn(320, 8), torch.randint(0, 3, (320,)))
    train = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=not same_batch, generator=g)
    val = torch.utils.data.DataLoader(ds, batch_size=160)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    norms = []
    for _ in range(epochs):
        model.train()
        for x, y in train:
            if same_batch:
                x, y = next(iter(train))
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            if clip is not None:
                norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
            opt.step()
        model.eval()
        with torch.no_grad():
            for x, _y in val:
                model(x)
    return [p.detach().clone() for p in model.parameters()], norms


def _diagnostics(run_id):
    with open(MlflowClient().download_artifacts(run_id, schema.DIAGNOSTICS_ARTIFACT)) as fh:
        return json.load(fh)


def test_fingerprints_clipping_and_loaders_are_recorded_without_changing_numbers(store_uri):
    plain, plain_norms = _loop(same_batch=True, clip=0.01)
    mlflow_nnaudit.autolog(silent=True)
    with mlflow.start_run() as run:
        recorded, norms = _loop(same_batch=True, clip=0.01)
    assert all(torch.equal(a, b) for a, b in zip(plain, recorded)) and norms == plain_norms
    d = _diagnostics(run.info.run_id)
    fp = d["inputs"]["fingerprints"]
    assert fp["sampled_batches"] >= 8 and fp["distinct"] == 1 and fp["most_common_share"] == 1.0
    assert fp["consecutive_repeats"] == 1.0 and "cycle_batches" not in fp  # the same batch step after step
    clip = d["clipping"]
    assert (
        clip["kind"] == "norm" and clip["limit"] == 0.01 and clip["calls"] == len(norms) - 1
    )  # step 0: no session yet
    assert clip["bite_share"] == 1.0 and clip["median_pre_clip_ratio"] > 1
    train = d["data_loader"]["train"]
    assert train["dataset_size"] == 320 and train["batch_size"] == 32 and train["batches_per_epoch"] == 10
    assert train["shuffle"] is False
    evals = [entry for entry in d["data_loader"]["loaders"] if not entry["training_iterations"]]
    assert evals and evals[0]["batch_size"] == 160 and evals[0]["iterations"] == 3


def test_a_healthy_loop_has_distinct_batches_and_no_clipping_facts(store_uri):
    mlflow_nnaudit.autolog(silent=True)
    with mlflow.start_run() as run:
        _loop()
    d = _diagnostics(run.info.run_id)
    fp = d["inputs"]["fingerprints"]
    assert fp["distinct"] == fp["sampled_batches"] >= 8
    assert fp["consecutive_repeats"] == 0.0 and "cycle_batches" not in fp
    assert "clipping" not in d
    assert d["data_loader"]["train"]["shuffle"] is True


def test_a_training_set_of_two_batches_sliced_by_hand_shows_as_a_cycle(store_uri):
    # 60 samples in slices of 32 (f26): batches A, B, A, B, ... -- repeats across epochs, never back
    # to back, and the cycle is the whole training set
    torch.manual_seed(0)
    x, y = torch.randn(60, 8), torch.randint(0, 3, (60,))
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mlflow_nnaudit.autolog(silent=True)
    with mlflow.start_run() as run:
        for _ in range(30):
            for i in range(0, 60, 32):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32]).backward()
                opt.step()
    fp = _diagnostics(run.info.run_id)["inputs"]["fingerprints"]
    assert fp["distinct"] == 2 and fp["consecutive_repeats"] == 0.0
    assert fp["cycle_batches"] == 2 and fp["cycle_samples"] == 60


def test_clip_grad_value_is_measured_and_the_wrappers_go_away(store_uri):
    mlflow_nnaudit.autolog(silent=True)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with mlflow.start_run() as run:
        for _ in range(30):
            opt.zero_grad()
            (model(torch.randn(16, 4) * 100).pow(2).mean()).backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), clip_value=1e-3)
            assert max(float(p.grad.abs().max()) for p in model.parameters()) <= 1e-3 + 1e-9
            opt.step()
    clip = _diagnostics(run.info.run_id)["clipping"]
    assert clip["kind"] == "value" and clip["bite_share"] == 1.0 and clip["measured_calls"] >= 5
    from mlflow_nnaudit.recorder.patches import install_dormant_hooks, uninstall_hooks

    uninstall_hooks()
    try:
        assert not hasattr(torch.nn.utils.clip_grad_norm_, "__nnaudit_original__")
        assert not hasattr(torch.utils.data.DataLoader.__iter__, "__nnaudit_original__")
    finally:
        install_dormant_hooks()  # as the rest of the session had them


def test_a_validation_set_stored_class_by_class_is_summarised_across_its_batches(store_uri):
    # an unshuffled validation loader over a set stored class by class (as ImageFolder lists it), each class
    # with its own input mean: the first two batches of every evaluation would show classes 0 and 1 only
    torch.manual_seed(0)
    x, y = torch.randn(256, 3), torch.randint(0, 4, (256,))
    xv = torch.cat([torch.randn(32, 3) + 2.0 * c for c in range(4)])  # 4 classes x 32, means 0, 2, 4, 6
    yv = torch.arange(4).repeat_interleave(32)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), batch_size=16)  # 8 batches
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mlflow_nnaudit.autolog(silent=True)
    with mlflow.start_run() as run:
        for _ in range(8):
            for i in range(0, 256, 32):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32]).backward()
                opt.step()
            with torch.no_grad():
                for xb, _yb in val:
                    model(xb)
    mlflow_nnaudit.autolog(disable=True, silent=True)
    ev = _diagnostics(run.info.run_id)["inputs"]["eval"]
    assert ev["batches"] == 16  # two per evaluation
    # every class seen: the mean of the 4 class means (3.0), where the first two batches alone give 0.0
    assert all(2.5 < m < 3.5 for m in ev["feature_mean"]), ev["feature_mean"]


def test_a_weighted_sampler_s_population_is_recorded(store_uri):
    # one weight per class instead of per sample (held-out program f113): the sampler can draw only
    # indices 0..1 of 320; per sample, all 320
    torch.manual_seed(0)
    x, y = torch.randn(320, 8), torch.randint(0, 2, (320,))
    ds = torch.utils.data.TensorDataset(x, y)
    class_weight = torch.tensor([0.3, 0.7])
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mlflow_nnaudit.autolog(silent=True)
    runs = {}
    cases = (
        ("per_class", class_weight, False),
        ("per_sample", class_weight[y], False),
        ("batched", class_weight, True),
    )
    for name, weights, batched in cases:
        sampler = torch.utils.data.WeightedRandomSampler(weights, num_samples=len(ds))
        if batched:  # the sampler inside a BatchSampler handed to the loader (review)
            batches = torch.utils.data.BatchSampler(sampler, batch_size=32, drop_last=False)
            loader = torch.utils.data.DataLoader(ds, batch_sampler=batches)
        else:
            loader = torch.utils.data.DataLoader(ds, batch_size=32, sampler=sampler)
        with mlflow.start_run() as run:
            for _ in range(2):
                for xb, yb in loader:
                    opt.zero_grad()
                    nn.functional.cross_entropy(model(xb), yb).backward()
                    opt.step()
        runs[name] = _diagnostics(run.info.run_id)["data_loader"]["train"]
    assert runs["per_class"]["sampler"] == "WeightedRandomSampler" and runs["per_class"]["sampler_population"] == 2
    assert runs["per_sample"]["sampler_population"] == runs["per_sample"]["dataset_size"] == 320
    assert runs["batched"]["sampler"] == "WeightedRandomSampler" and runs["batched"]["sampler_population"] == 2


def test_class_weights_label_smoothing_and_an_ignore_index_in_range_are_noted(store_uri):
    # what moves a cross-entropy off the label frequencies' entropy (review): weights, smoothing; and
    # padding tagged 0 with ignore_index=0 is left out of the label histogram
    def train(criterion):
        torch.manual_seed(0)
        x, y = torch.randn(256, 8), torch.randint(0, 4, (256,))
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            for i in range(0, 256, 32):
                opt.zero_grad()
                criterion(model(x[i : i + 32]), y[i : i + 32]).backward()
                opt.step()
        return [p.detach().clone() for p in model.parameters()]

    special = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0, 4.0]), label_smoothing=0.1, ignore_index=0)
    plain = train(special)
    mlflow_nnaudit.autolog(silent=True)
    facts = {}
    for name, criterion in (("special", special), ("plain", nn.CrossEntropyLoss())):
        with mlflow.start_run() as run:
            params = train(criterion)
        if name == "special":
            assert all(torch.equal(a, b) for a, b in zip(plain, params))  # no number changed
        facts[name] = _diagnostics(run.info.run_id)["loss"]
    special, plain = facts["special"], facts["plain"]
    assert special["class_weighted"] is True and special["label_smoothing"] == 0.1
    assert special["label_counts"][0] == 0 and sum(special["label_counts"]) > 0
    assert "class_weighted" not in plain and "label_smoothing" not in plain and plain["label_counts"][0] > 0


def test_loss_options_given_by_position_are_read_and_nothing_is_left_on_the_loss(store_uri):
    # `F.cross_entropy(out, y, w)` and a numpy ignore_index (second review); the user's loss tensor carries
    # nothing of ours (it would travel into their checkpoints)
    import numpy as np

    torch.manual_seed(0)
    x, y = torch.randn(256, 8), torch.randint(0, 4, (256,))
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    mlflow_nnaudit.autolog(silent=True)
    losses = []
    with mlflow.start_run() as run:
        for _ in range(3):
            for i in range(0, 256, 32):
                opt.zero_grad()
                out = model(x[i : i + 32])
                loss = nn.functional.cross_entropy(out, y[i : i + 32], w, None, np.int64(0))
                loss.backward()
                opt.step()
                losses.append(loss)
    assert not any(k.startswith("_nnaudit") for loss in losses for k in vars(loss))
    facts = _diagnostics(run.info.run_id)["loss"]
    assert facts["class_weighted"] is True and facts["label_counts"][0] == 0


def test_the_spread_of_the_parameter_groups_learning_rates_is_recorded(store_uri):
    # a pretrained encoder fine-tuned at a hundredth of its head's rate (held-out program f130); a weight-decay
    # split keeps one rate (spread 1); one group records no spread
    torch.manual_seed(0)
    x, y = torch.randn(128, 8), torch.randint(0, 2, (128,))
    mlflow_nnaudit.autolog(silent=True)
    spreads = {}
    cases = {
        "fine_tune": (1e-3, 1e-5),
        "decayed_to_zero": (1e-3, 1e-5),  # a schedule that ends every group at 0 (review): the rates as set
        "frozen_group": (1e-3, 1e-5, 0.0),  # a group held at lr 0 has no rate to compare
        "decay_split": (1e-3, 1e-3),
        "one_group": (1e-3,),
    }
    for name, rates in cases.items():
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
        groups = [{"params": model[i].parameters(), "lr": lr} for i, lr in zip((0, 2, 4), rates)]
        groups += [{"params": model[i].parameters(), "lr": rates[-1]} for i in (0, 2, 4)[len(rates) :]]
        if len(rates) == 1:
            groups = [{"params": model.parameters(), "lr": rates[0]}]
        opt = torch.optim.Adam(groups)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / 3)) if "zero" in name else None
        with mlflow.start_run() as run:
            for i in range(0, 128, 32):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32]).backward()
                opt.step()
                if sched is not None:
                    sched.step()
        spreads[name] = _diagnostics(run.info.run_id)["optimizer"].get("nnaudit.optimizer.lr_spread")
    mlflow_nnaudit.autolog(disable=True, silent=True)
    assert spreads["fine_tune"] == spreads["decayed_to_zero"] == spreads["frozen_group"] == pytest.approx(100.0)
    assert spreads["decay_split"] == 1.0 and spreads["one_group"] is None, spreads
