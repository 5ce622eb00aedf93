"""`vanishing_gradients`: the first layers' gradients are orders of magnitude below the last's."""

from __future__ import annotations

import math

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num


class VanishingGradients(Rule):
    """The recorder logs per-layer gradient norms on sampled steps (`nnaudit/grad_norm/<layer>`).
    Reported when, over the second half of the run, the first layer's median gradient norm is
    more than 1000x smaller than the last layer's: the early layers barely learn. After a
    too-high learning rate destroyed the network (dead units pass no gradient), after weights
    initialised to zero (a zero matrix passes no gradient back), or under too much regularisation
    (weights decayed towards zero pass little gradient back), it is listed as that cause's
    consequence; the advice names ReLU-family activations only for a model that
    does not already use them. A plain `nn.RNN` over 20 steps or more on a run that learned nothing
    is its gradient vanishing through time (`_through_time`)."""

    cause = "vanishing_gradients"
    PREFIX = schema.layer_prefix(schema.LAYER_GRAD_NORM)
    reads = (
        PREFIX,
        ("model", "layers"),
        ("model", "activations"),
        ("activations", "layers"),
        schema.layer_prefix(schema.LAYER_DEAD_RELU),
        *helpers.PLAIN_RNN_READS,
    )
    #: upstream causes it follows from, when found too (listed after them); a zero weight matrix passes
    #: no gradient to the layers below it, and a too-small init shrinks it layer by layer
    consequence_of = (
        "learning_rate_too_high",
        "bad_weight_init",
        "dead_relu",
        "saturated_activations",
        "network_too_deep",
        "too_much_regularization",
    )

    #: gradient norm of the first layer vs the last below this: vanishing (AutoTrainer uses 1e-3
    #: with |g_first| < 1e-4; we use the ratio alone, on per-layer medians)
    RATIO = 1e-3

    @staticmethod
    def _uses_relu(view: RunView) -> bool:
        """Whether ReLU-family advice would be wrong or pointless: the model already uses ReLU-family
        activations (the recorder's activation facts, or its per-layer dead-ReLU curves), or the
        recorder names no sigmoid/tanh hidden layer to replace (a pooler's tanh is an architecture's
        design, BERT's, not a hidden layer)."""
        acts: dict = {}
        for found in (view.fact("model", "activations"), view.fact("activations", "layers")):
            if isinstance(found, dict):
                acts.update({str(k): str(v) for k, v in found.items()})
            elif isinstance(found, list):
                acts.update({str(v): str(v) for v in found})
        text = " ".join(f"{k} {v}" for k, v in acts.items()).lower()
        if any(a in text for a in ("relu", "gelu", "silu", "elu")):
            return True
        if view.layer_medians(schema.layer_prefix(schema.LAYER_DEAD_RELU)):
            return True
        squashing = [
            k
            for k, v in acts.items()
            if any(a in f"{k} {v}".lower() for a in ("sigmoid", "tanh")) and "pooler" not in k.lower()
        ]
        return not squashing

    def evaluate(self, view: RunView) -> Finding | None:
        norms = view.layer_medians(self.PREFIX)
        order = [name for name in (view.fact("model", "layers") or {}) if name in norms]
        first, last = (norms[order[0]], norms[order[-1]]) if len(order) >= 2 else (0.0, 0.0)
        if last <= 0 or first / last >= self.RATIO:
            return self._through_time(view)
        ratio = first / last
        return self.finding(
            confidence="high",
            severity="warning",
            score=min(1.0, -math.log10(max(ratio, 1e-12)) / 6),
            summary=f"the first layer's gradients are {ratio:.1e} of the last layer's ({order[0]}: {fmt_num(first)}, "
            f"{order[-1]}: {fmt_num(last)})",
            recommendation=f"Gradients vanish towards the input (first layer {ratio:.1e} of the last): "
            + (
                ""
                if self._uses_relu(view)
                else "use ReLU-family activations instead of sigmoid/tanh in hidden layers, "
            )
            + "He initialisation, normalisation layers, or residual connections; or make the network shallower.",
            evidence=[Evidence("per_layer_grad_norm", self.PREFIX, {"per_layer": norms, "first_to_last": ratio})],
        )

    def _through_time(self, view: RunView) -> Finding | None:
        """A plain `nn.RNN` (no LSTM or GRU in the model) fed sequences of 20 steps or more, on a run that
        learned nothing and did not blow up: its gradient vanishes through time, not across layers,
        which per-layer norms do not show (held-out program f71: the temporal-order task at chance).
        Medium confidence: a plain RNN fed unrelated labels looks the same, and that finding is listed
        after this one."""
        rnn, harm = helpers.plain_rnn(view), view.outcome_harm()
        if rnn is None or harm is None or harm.severity != "failed" or helpers.exploded(view):
            return None  # (a loss that blew up is the opposite: gradients that grew through time)
        (name, *_), steps = rnn
        return self.finding(
            confidence="medium",
            severity="warning",
            score=0.8,
            summary=f"a plain recurrent layer ({name}) over sequences of {steps} steps or more, and a run that learned "
            f"nothing ({harm.summary})",
            recommendation=f"A plain nn.RNN multiplies its gradient by the same recurrent matrix at every time step, "
            f"so over {steps} steps or more it vanishes before reaching the early ones ({name}): use nn.LSTM or nn.GRU, "
            "shorten the sequences, or clip gradients and initialise the recurrent weights orthogonally.",
            evidence=[
                Evidence("plain_rnn_no_learning", None, {"layers": rnn[0], "steps": steps, "outcome": harm.summary})
            ],
        )
