"""`network_too_deep`: a plain deep stack that does not train as a shallower one would."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import NO_LEARNING, PLATEAU_MAX_IMPROVEMENT

RECURRENT_READS = (("model", "recurrent"), ("model", "init"))


#: layers one recurrent module must stack to count towards depth (1 to 4 are usual)
DEEP_RECURRENT = 6


def recurrent_layers(view: RunView) -> int:
    """The layers the model's recurrent modules stack (`nn.LSTM(..., num_layers=16)` is one module
    and 16 layers), counting a module only where it stacks DEEP_RECURRENT or more: the recorder's
    `num_layers`, or for a recording without it the highest `_lK` suffix among the module's initial
    weights (`weight_ih_l15`) plus one. (Review: a healthy-depth ConvGRU, 6 conv and linear layers and
    a 4-layer GRU, trained on noisy labels read as too deep.)"""
    total = 0
    init = [str(e.get("param", "")) for e in view.fact("model", "init") or [] if isinstance(e, dict)]
    for r in view.fact("model", "recurrent") or []:
        if not isinstance(r, dict):
            continue
        n = r.get("num_layers")
        if not isinstance(n, int):
            prefix = f"{r.get('name')}.weight_ih_l"
            ks = [int(p[len(prefix) :]) for p in init if p.startswith(prefix) and p[len(prefix) :].isdigit()]
            n = max(ks) + 1 if ks else 1
        total += n if n >= DEEP_RECURRENT else 0
    return total


class NetworkTooDeep(Rule):
    """The recorder saw a plain stack of at least 10 weight layers with no normalisation
    layer (a recurrent module counts as the layers it stacks: `recurrent_layers`), and it does
    not train as a shallower one would: its gradients decay with depth
    (the first layer's median gradient norm is under 1% of the last layer's) or its training
    loss made less than 30% progress. Both together are high confidence. Residual connections
    are not visible in the module list; the gradient decay is what they would prevent."""

    cause = "network_too_deep"
    GRAD_PREFIX = schema.layer_prefix(schema.LAYER_GRAD_NORM)
    reads = (("model", "depth"), ("model", "normalization"), GRAD_PREFIX, ("model", "layers"), *RECURRENT_READS)

    #: weight layers in a plain stack (no normalisation) from which depth itself hurts (He et al.
    #: 2016: plain nets degrade beyond ~20 layers even with BatchNorm; without it, and with the
    #: default init, MLPs a dozen layers deep already stall)
    DEEP_LAYERS = 10
    #: first-to-last layer gradient ratio that counts as gradients decaying with depth (an order of
    #: magnitude less strict than `vanishing_gradients`' 1e-3: here depth is the claim, not vanishing)
    GRADIENT_DECAY = 1e-2
    #: less progress than this is "stuck" (shared with plateau) ...
    MAX_IMPROVEMENT = PLATEAU_MAX_IMPROVEMENT
    #: ... and less than this no learning at all: a failed run (shared)
    NO_LEARNING = NO_LEARNING

    def evaluate(self, view: RunView) -> Finding | None:
        depth = view.fact("model", "depth")
        norms = view.fact("model", "normalization")
        stacked = recurrent_layers(view)
        if not isinstance(depth, int) or depth + stacked < self.DEEP_LAYERS or norms:
            return None
        depth += stacked
        grads = view.layer_medians(self.GRAD_PREFIX)
        order = [name for name in (view.fact("model", "layers") or {}) if name in grads]
        ratio = None
        if len(order) >= 2 and grads[order[-1]] > 0:
            ratio = grads[order[0]] / grads[order[-1]]
        decays = ratio is not None and ratio < self.GRADIENT_DECAY
        uf = view.underfit()
        stuck = uf is not None and uf.improvement < self.MAX_IMPROVEMENT
        if not (decays or stuck):
            return None
        signs = []
        if decays:
            signs.append(f"the first layer's gradients are {ratio:.1e} of the last layer's")
        if stuck:
            signs.append(f"the training loss fell only {uf.improvement:.0%}")
        seen = " and ".join(signs)
        rec = f" ({stacked} of them recurrent layers stacked; 1 to 4 are usual)" if stacked else ""
        return self.finding(
            confidence="high" if decays and stuck else "medium",
            severity="failed" if uf is not None and uf.improvement < self.NO_LEARNING else "warning",
            # a stuck loss is the harm itself; gradient decay alone, on a run that trained, is advice
            kind="outcome" if stuck else None,
            score=0.85,
            summary=f"a plain stack of {depth} weight layers{rec} without normalisation: {seen}",
            recommendation=f"The network is a plain stack of {depth} weight layers{rec} without normalisation, and {seen}: "
            "make it shallower (3-4 hidden layers are plenty for most tabular tasks), or add residual connections "
            "and normalisation layers (`nn.LayerNorm`/`nn.BatchNorm1d`) with He initialisation "
            "(`nn.init.kaiming_normal_`) so that signal and gradients survive the depth.",
            evidence=[
                Evidence(
                    "depth",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {
                        "weight_layers": depth,
                        "recurrent_layers": stacked,
                        "normalization": norms,
                        "first_to_last_grad_ratio": ratio,
                        "train_improvement": uf.improvement if uf else None,
                    },
                )
            ],
        )
