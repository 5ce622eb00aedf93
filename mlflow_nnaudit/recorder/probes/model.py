"""What the model is: its structure (depth, activations, output layer, normalisation and
dropout layers, bias-less layers, parameters no optimizer trains) and the scale and symmetry
of its weights before the first update, for `nnaudit/diagnostics.json` ("model").

Fed through the probe interface: `on_parameters` when the session learns which parameters
are trained (the initial weights are read then, before the optimizer's first update), and
`attach` once the model is known. Costs nothing per step.
"""

from __future__ import annotations

import functools
import math
import threading
import weakref
from typing import Any

import torch

from mlflow_nnaudit import schema
from mlflow_nnaudit.recorder.probes.base import ModelInfo, Probe, StepContext


def optimizer_facts(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    facts: dict[str, Any] = {schema.PARAM_OPTIMIZER: type(optimizer).__name__}
    for key in ("lr", "weight_decay", "momentum"):
        v = group.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            facts[schema.optimizer_param(key)] = v
        elif isinstance(v, torch.Tensor) and v.numel() == 1:
            facts[schema.optimizer_param(key)] = float(v)
    if "betas" in group:
        facts[schema.optimizer_param("betas")] = ",".join(str(float(b)) for b in group["betas"])
    facts[schema.optimizer_param("param_groups")] = len(optimizer.param_groups)
    # groups given rates of their own (a pretrained encoder's 10x lower): as set, before a schedule (which keeps
    # `initial_lr`) took them to 0 at the end; a group frozen at lr 0 has no rate to compare (review)
    rates = [g.get("initial_lr", g.get("lr")) for g in optimizer.param_groups]
    rates = [float(r) for r in rates if isinstance(r, (int, float, torch.Tensor)) and float(r) > 0]
    if len(rates) >= 2:
        facts[schema.PARAM_OPTIMIZER_LR_SPREAD] = max(rates) / min(rates)
    return facts


_WEIGHT_LAYERS = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)


def _is_weight_layer(m: torch.nn.Module) -> bool:
    """A linear or convolution layer: torch's, or the Hugging Face `Conv1D` of GPT-2 and its family
    (a linear layer with its weight stored transposed, `nf` outputs; not a torch subclass)."""
    return isinstance(m, _WEIGHT_LAYERS) or _hf_conv1d(m)


def _hf_conv1d(m: torch.nn.Module) -> bool:
    return type(m).__name__ == "Conv1D" and isinstance(getattr(m, "nf", None), int)


def _width(m: torch.nn.Module) -> int:
    """A weight layer's outputs."""
    return int(m.nf) if _hf_conv1d(m) else int(m.weight.shape[0])


def _is_activation(m: torch.nn.Module) -> bool:
    """torch's activation modules, and those of libraries that write their own (Hugging Face's
    `NewGELUActivation`, `GELUActivation`, ...: a class named `*Activation`; not its identity,
    `LinearActivation`)."""
    name = type(m).__name__
    return isinstance(m, _ACTIVATIONS) or (name.endswith("Activation") and name != "LinearActivation")


_ACTIVATIONS = (
    torch.nn.ReLU,
    torch.nn.LeakyReLU,
    torch.nn.ELU,
    torch.nn.GELU,
    torch.nn.SiLU,
    torch.nn.Tanh,
    torch.nn.Sigmoid,
    torch.nn.Softmax,
    torch.nn.LogSoftmax,
    torch.nn.Softplus,
    torch.nn.ReLU6,
)
_MAX_NAMES = 20


_NORMS = (
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
)


def _no_bias_without_norm(leaves: list[tuple[str, torch.nn.Module]]) -> list[str]:
    """Weight layers without a bias whose next layer is not a normalisation layer (a bias
    before BatchNorm/LayerNorm is redundant, so leaving it out there is normal)."""
    out = []
    for i, (name, m) in enumerate(leaves):
        if _is_weight_layer(m) and getattr(m, "bias", None) is None:
            nxt = leaves[i + 1][1] if i + 1 < len(leaves) else None
            if not isinstance(nxt, _NORMS):
                out.append(name)
    return out


#: modules that pass their input on by a linear map, or unchanged: no activation between two layers
_PASS_THROUGH = (torch.nn.Flatten, torch.nn.Unflatten, torch.nn.Identity, torch.nn.modules.dropout._DropoutNd)


def _linear_stacks(root: torch.nn.Module) -> list[list[str]]:
    """Linear layers that follow one another in an `nn.Sequential` with no activation between them
    (nothing, or only a flatten, an identity or a dropout): together they are one linear map, however
    many there are, [first, next] by name. Read from `nn.Sequential`s only: a custom `forward`'s order
    and its functional activations (`F.relu`) are not in the module tree."""
    out = []
    for prefix, seq in root.named_modules():
        if not isinstance(seq, torch.nn.Sequential):
            continue
        last = None
        for name, m in seq.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(m, torch.nn.Linear):
                if last is not None:
                    out.append([last, full])
                last = full
            elif not isinstance(m, _PASS_THROUGH):
                last = None
    return out[:_MAX_NAMES]


def _recurrent_kind(m: torch.nn.Module) -> str:
    """RNN, LSTM or GRU for torch's recurrent layers and cells and their subclasses, else the class name."""
    for kind, types in (
        ("LSTM", (torch.nn.LSTM, torch.nn.LSTMCell)),
        ("GRU", (torch.nn.GRU, torch.nn.GRUCell)),
        ("RNN", (torch.nn.RNN, torch.nn.RNNCell)),
    ):
        if isinstance(m, types):
            return kind
    return type(m).__name__


def describe_model(root: torch.nn.Module, opt_ids: set[int]) -> dict[str, Any]:
    """The model's structure as the rules need it: depth, activations, the output layer,
    regularisation and normalisation layers, bias-less layers, parameters that can never be
    trained (requires_grad on, but missing from every optimizer group), and frozen ones."""
    leaves = [(n, m) for n, m in root.named_modules() if not list(m.children())]
    weight_layers = [(n, m) for n, m in leaves if _is_weight_layer(m)]
    params = list(root.named_parameters())
    return {
        "depth": len(weight_layers),
        "widths": [_width(m) for _, m in weight_layers][:64],
        "activations": sorted({type(m).__name__ for _, m in leaves if _is_activation(m)}),
        "last_module": type(leaves[-1][1]).__name__ if leaves else None,
        "last_module_name": leaves[-1][0] if leaves else None,  # the per-layer metrics' name for it
        "dropout": [float(m.p) for _, m in leaves if isinstance(m, torch.nn.modules.dropout._DropoutNd)][:16],
        "normalization": sorted({type(m).__name__ for _, m in leaves if isinstance(m, _NORMS)}),
        "no_bias_layers": [n for n, m in weight_layers if getattr(m, "bias", None) is None][:_MAX_NAMES],
        "no_bias_without_norm": _no_bias_without_norm(leaves)[:_MAX_NAMES],
        "linear_stacks": _linear_stacks(root),
        # recurrent layers: their type, whether they take (batch, time, ...) inputs, which says
        # where the model's input holds its sequence length, and how many layers one module stacks
        "recurrent": [
            {
                "name": n,
                "type": _recurrent_kind(m),
                "batch_first": bool(getattr(m, "batch_first", False)),
                "num_layers": int(getattr(m, "num_layers", 1)),
            }
            for n, m in root.named_modules()
            if isinstance(m, (torch.nn.RNNBase, torch.nn.RNNCellBase))
        ][:_MAX_NAMES],
        "parameters": int(sum(p.numel() for _, p in params)),
        "trainable_not_in_optimizer": [n for n, p in params if p.requires_grad and id(p) not in opt_ids][:_MAX_NAMES],
        "requires_grad_false": [n for n, p in params if not p.requires_grad][:_MAX_NAMES],
        **_frozen(params),
    }


#: frozen tensors named by size (`frozen_largest`)
_LARGEST_FROZEN = 5


def _frozen(params: list[tuple[str, torch.nn.Parameter]]) -> dict[str, Any]:
    """How much of the model is frozen (`requires_grad=False`) when it is attached: the values
    (`frozen_parameters`), the frozen tensors (`frozen_tensors`) and the largest ones, [name, values]
    (`frozen_largest`)."""
    frozen = sorted(((n, int(p.numel())) for n, p in params if not p.requires_grad), key=lambda e: -e[1])
    return {
        "frozen_parameters": sum(k for _, k in frozen),
        "frozen_tensors": len(frozen),
        "frozen_largest": [[n, k] for n, k in frozen[:_LARGEST_FROZEN]],
    }


#: the parameters through which a built-in layer multiplies its input: a weight matrix/kernel with a
#: fan-in (the only tensors for which a constant or symmetric init is a bug, and LeCun's yardstick holds)
_FAN_IN_WEIGHTS: tuple[tuple[type, tuple[str, ...]], ...] = (
    ((torch.nn.Linear, torch.nn.Bilinear, torch.nn.modules.conv._ConvNd), ("weight",)),
    (
        (torch.nn.MultiheadAttention,),
        ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"),
    ),
)
#: layers whose `weight` is no fan-in matrix: a lookup table or a per-feature scale
_NOT_FAN_IN = (torch.nn.Embedding, torch.nn.EmbeddingBag, *_NORMS)


#: what `torch.nn.utils.weight_norm` / `spectral_norm` call the tensor that stands for a weight
_REPARAMETRISED = ("_v", "_orig")


def is_layer_weight(module: torch.nn.Module, attr: str) -> bool:
    """Whether `module.<attr>` is the weight matrix/kernel of a layer with a fan-in: a Linear,
    Bilinear or convolution's `weight`, an RNN/GRU/LSTM (cell)'s `weight_ih`/`weight_hh`/`weight_hr`,
    MultiheadAttention's input projections, or the `weight` of a layer from outside `torch.nn` (the
    convention of custom and third-party layers, e.g. GPT-2's Conv1D). Not an embedding table, a
    norm's scale, a bias, or any other parameter a model holds itself (`nn.Parameter(torch.zeros(...))`
    for learned positions or a cls token), for which a zero or constant init is normal."""
    if isinstance(module, _NOT_FAN_IN):
        return False
    if attr.endswith(_REPARAMETRISED):  # the old weight_norm's direction, the old spectral_norm's original
        attr = attr.rsplit("_", 1)[0]
    for kinds, attrs in _FAN_IN_WEIGHTS:
        if isinstance(module, kinds):
            return attr in attrs
    if isinstance(module, (torch.nn.RNNBase, torch.nn.RNNCellBase)):
        return attr.startswith(("weight_ih", "weight_hh", "weight_hr"))
    if type(module).__module__.startswith("torch."):
        return False  # another built-in module's own parameter (PReLU's slopes, ...)
    return attr == "weight"


def parameter_roles(root: torch.nn.Module) -> dict[int, tuple[str, bool]]:
    """Per parameter (by id): the class of the module that holds it and whether it is a layer's
    fan-in weight (`is_layer_weight`)."""
    out: dict[int, tuple[str, bool]] = {}
    modules = dict(root.named_modules())
    for name, m in modules.items():
        for attr, p in m.named_parameters(recurse=False):
            owner, role = m, attr
            parent, found, weight = f".{name}".rpartition(".parametrizations.")
            parent = parent[1:]
            if found and parent in modules:  # torch.nn.utils.parametrize: the layer's weight, stored here
                owner, role = modules[parent], weight if p.shape == _current_shape(modules[parent], weight) else ""
            out.setdefault(id(p), (type(owner).__name__, is_layer_weight(owner, role)))
    return out


def _current_shape(module: torch.nn.Module, attr: str) -> torch.Size | None:
    """The shape of a parametrised module's tensor, read from what parametrize stores for it
    (its largest original: `original`, or weight norm's direction `original1`, not its
    magnitudes), never by computing the parametrisation: that could fill a `parametrize.cached()`
    cache with a tensor made without autograd, or draw random numbers, in the user's training."""
    try:
        stored = [t for _, t in module.parametrizations[attr].named_parameters(recurse=False)]
        return max(stored, key=lambda t: t.numel()).shape if stored else None
    except Exception:  # noqa: BLE001 - never raise into training; the role is just unknown
        return None


def initial_weight_stats(params: list[torch.Tensor]) -> dict[int, dict[str, Any]]:
    """Scale and symmetry of each weight matrix/kernel before the first update, against
    LeCun's 1/sqrt(fan_in) (PyTorch's default init gives ~0.58 of it, He ~1.41)."""
    out: dict[int, dict[str, Any]] = {}
    with torch.no_grad():
        for p in params:
            if p.dim() < 2 or p.numel() < 4:
                continue
            w = p.detach().reshape(p.shape[0], -1)
            # complex weights keep their dtype: std is then sqrt(mean |w - mean|^2), the scale
            # that matters, and nothing casts them to real (torch warns in the user's run)
            w = w.to(torch.complex64) if w.is_complex() else w.float()
            fan_in = w.shape[1]
            std = float(w.std())
            rows_same = float((w == w[0]).all(dim=1).float().mean()) if w.shape[0] > 1 else 0.0
            out[id(p)] = {
                "shape": list(p.shape),
                "std": std,
                "lecun_std": 1 / math.sqrt(fan_in),
                "scale_vs_lecun": std * math.sqrt(fan_in),
                "constant": bool((w == w.reshape(-1)[0]).all()),
                "zero": not bool(w.any()),
                "identical_rows_share": rows_same,
            }
    return out


def unregistered_modules(root: torch.nn.Module, opt_ids: set[int]) -> list[tuple[str, torch.nn.Module]]:
    """Modules with trainable parameters that no optimizer group holds, kept by the model in a plain
    Python list, tuple or dict attribute (`self.hids = [nn.Linear(...), ...]` instead of an
    `nn.ModuleList`): not registered, so `model.parameters()` never hands them to the optimizer and
    they keep their random initial weights. Named as `attr[key]` under their owner. Modules the list
    only refers to (registered elsewhere, their parameters in the optimizer or not) are not listed."""
    out: list[tuple[str, torch.nn.Module]] = []
    seen: set[int] = {id(m) for m in root.modules()}  # registered (a list that refers to them is fine)
    for owner, m in root.named_modules():
        for attr, val in vars(m).items():
            if attr.startswith("_"):
                continue  # the registration dicts themselves (_modules, _parameters, ...)
            if isinstance(val, dict):
                items = list(val.items())
            elif isinstance(val, (list, tuple)):
                items = list(enumerate(val))
            else:
                continue
            for key, x in items[: _MAX_NAMES * 4]:
                if not isinstance(x, torch.nn.Module) or id(x) in seen:
                    continue
                seen.add(id(x))
                if any(p.requires_grad and id(p) not in opt_ids for p in x.parameters()):
                    out.append((f"{owner + '.' if owner else ''}{attr}[{key!r}]", x))
    return out


def _numel(p: torch.Tensor) -> int:
    """Values in a parameter; 0 for a lazy one not yet materialised (`nn.LazyLinear` before its first call)."""
    return 0 if isinstance(p, torch.nn.parameter.UninitializedParameter) else int(p.numel())


def _ignore(*_: Any) -> None:
    """What a copy or a pickle of the model carries in place of `_WatchEnd`: nothing to do."""


def _ignoring() -> Any:
    """Rebuilds `_ignore` from a copy or a pickle (a hook table holding None raises on every call)."""
    return _ignore


class _WatchEnd:
    """The forward hook that ends `ModelFactsProbe`'s watch when the model's forward returns or raises. It holds
    the probe weakly, never raises into the model's call, and a deep copy or a pickle of the model taken during
    that forward carries `_ignore` in its place."""

    __slots__ = ("_probe",)

    def __init__(self, probe: ModelFactsProbe) -> None:
        self._probe = weakref.ref(probe)

    def __call__(self, *_: Any) -> None:
        probe = self._probe()
        if probe is None:
            return
        try:  # not removed here: torch iterates the hook table while it calls this (a forward that raised)
            probe._end_watch()
        except Exception:  # noqa: BLE001 - never raise into the user's forward
            probe._watch = None

    def __reduce__(self):
        return (_ignoring, ())


#: training forward passes watched for layers built inside `forward` (`nn.Module.__init__` wrapped for those only)
OUTSIDE_CHECKS = 3


class ModelFactsProbe(Probe):
    """The model's structure and initial weights (one-off facts, no metrics).

    For the length of each of the model's first OUTSIDE_CHECKS training forward passes (ended by a forward
    hook when it returns or raises, and, should that be missed, by the next loss call, backward, step or
    forward, or the session's end), `nn.Module.__init__` is wrapped: a module with trainable parameters
    outside the followed optimizer, built by the training thread with gradients on, and already gone when the
    watch ends, was built inside `forward` on every call (`nn.Linear(128, 10)(x)`): new random weights each
    call, which never train (`outside_modules`, `rebuilt`). Modules are held weakly (their parameter dicts,
    which outlive them, say what they held). A module built there and kept (a lazily created attribute) is
    not recorded, nor one that holds a reference to itself (freed only by the garbage collector). No global
    module hook: a compiled module warns of one."""

    name = "model"

    def __init__(self) -> None:
        self._init_stats: dict[int, dict[str, Any]] = {}
        self._opt_ids: set[int] = set()
        #: the parameters of the other optimizers seen stepping (`on_other_optimizer`): trained as well
        self._other_ids: set[int] = set()
        #: the parameters found in no optimizer when the model was attached, by name (checked again at the summary)
        self._untrained_ids: dict[str, int] = {}
        self.facts: dict[str, Any] | None = None
        self._unregistered_ran: list[str] = []  # unregistered modules whose parameters got a gradient
        self._unregistered: list[tuple[str, list[torch.Tensor]]] = []  # the others, still watched
        self._root: torch.nn.Module | None = None
        self._outside_checks = 0
        self._watch: tuple[Any, Any, list] | None = None  # (torch's Module.__init__, ours, [on]) while watched
        self._hook: Any = None  # the handle of `_WatchEnd` on the model, until the next event removes it
        self._built: list[tuple[Any, str, dict]] = []  # (weakref, class, parameter dict) built while watched
        self.outside: dict[str, dict[str, Any]] = {}  # "Linear (1,290 parameters)" -> {module, parameters, rebuilt}

    def on_parameters(self, optimizer: Any, params: list) -> None:
        self._opt_ids = {id(p) for p in params}
        self._init_stats = initial_weight_stats(params)

    def on_other_optimizer(self, optimizer: Any, params: list) -> None:
        # SparseAdam over an embedding table and Adam over the rest: a parameter that only the other
        # optimizer holds is trained all the same (it is not "in no optimizer group")
        self._other_ids |= {id(p) for p in params}
        self._unregistered = [(n, ps) for n, ps in self._unregistered if not all(id(p) in self._other_ids for p in ps)]

    def _trained_ids(self) -> set[int]:
        """The parameters of the followed optimizer and of every other one seen stepping."""
        return self._opt_ids | self._other_ids

    def attach(self, model: ModelInfo) -> None:
        root = model.root
        if root is None:
            return
        trained = self._trained_ids()
        structure = describe_model(root, trained)
        names = {id(p): n for n, p in root.named_parameters()}
        roles = parameter_roles(root)
        structure["init"] = [
            {"param": names[i], **st, "module": roles[i][0], "layer_weight": roles[i][1]}
            for i, st in self._init_stats.items()
            if i in names
        ]
        self.facts = {
            "class": type(root).__name__,
            "layers": {name: [list(p.shape) for p in ps] for name, ps in model.layers.items()},
            **structure,
        }
        # listed once one of their parameters holds a gradient on a sampled step (`before_step`): they
        # are in the loss's graph but no optimizer steps them. A teacher kept in a list whose output is
        # detached, or run under no_grad, never gets one. No hook goes on the user's modules.
        self._unregistered = [(name, list(m.parameters())) for name, m in unregistered_modules(root, trained)]
        untrained = set(structure["trainable_not_in_optimizer"])
        self._untrained_ids = {n: id(p) for n, p in root.named_parameters() if n in untrained}
        self._root = root

    # --- layers built inside forward on every call ------------------------------------------------
    def on_input(self, args: tuple, evaluating: bool, sampled: bool) -> None:
        self._unwatch()  # the last watched forward never reached a loss or a step (it raised, or nothing followed)
        if evaluating or self._root is None or self._outside_checks >= OUTSIDE_CHECKS or torch.compiler.is_compiling():
            return
        self._outside_checks += 1
        original, built, thread, on = torch.nn.Module.__init__, self._built, threading.get_ident(), [True]

        @functools.wraps(original)
        def __init__(module, *a, **k):
            original(module, *a, **k)
            # built by this thread with gradients on while watched (a random projection built under no_grad is
            # on purpose; a wrapper left stranded by another's patch records nothing): held weakly, with its own
            # parameter dict, which outlives it
            if on[0] and threading.get_ident() == thread and torch.is_grad_enabled():
                try:
                    built.append((weakref.ref(module), type(module).__name__, module._parameters))
                except Exception:  # noqa: BLE001 - a module that cannot be watched is built all the same
                    pass

        # the hook first: should it fail, nothing is patched. It ends the watch when the forward returns or raises
        self._hook = self._root.register_forward_hook(_WatchEnd(self), always_call=True)
        torch.nn.Module.__init__ = __init__
        self._watch = (original, __init__, on)

    def on_loss(self, fn: str, inp: Any, target: Any, out: Any, evaluating: bool, sampled: bool, step: int) -> dict:
        self._unwatch()  # the forward returned: what it built and let go is gone
        return {}

    def on_before_backward(self, ctx: StepContext) -> dict[str, Any]:
        self._unwatch()  # a loss written by hand: no loss function call ended the watch
        return {}

    def _unwatch(self) -> None:
        """End the watch (if on) and remove its hook."""
        if self._hook is not None:
            hook, self._hook = self._hook, None
            hook.remove()
        self._end_watch()

    def _end_watch(self) -> None:
        """Undo the wrapped `Module.__init__` and record the modules built and already gone."""
        if self._watch is None:
            return
        original, ours, on = self._watch
        self._watch, on[0] = None, False
        if torch.nn.Module.__init__ is ours:  # still ours (nothing patched it since)
            torch.nn.Module.__init__ = original
        built, self._built = self._built, []
        trained = self._trained_ids() if built else set()
        for ref, name, params in built:  # gone already: built inside the forward and let go when it returned
            own = [p for p in params.values() if p is not None and p.requires_grad and id(p) not in trained]
            if own and ref() is None:
                n = sum(map(_numel, own))
                self.outside[f"{name} ({n:,} parameters)"] = {"module": name, "parameters": n, "rebuilt": True}

    def close(self) -> None:
        self._unwatch()

    def before_step(self, ctx: StepContext) -> dict[str, Any]:
        self._unwatch()
        if self._unregistered:
            trained = [name for name, ps in self._unregistered if any(p.grad is not None for p in ps)]
            self._unregistered_ran += trained
            self._unregistered = [(n, ps) for n, ps in self._unregistered if n not in trained]
        return {}

    def summary(self) -> dict[str, Any]:
        if not self.facts:
            return {}
        outside = {"outside_modules": list(self.outside.values())[:_MAX_NAMES]} if self.outside else {}
        untrained = [n for n, i in self._untrained_ids.items() if i not in self._other_ids]
        return (
            self.facts
            | {"trainable_not_in_optimizer": untrained}
            | ({"unregistered_modules": self._unregistered_ran[:_MAX_NAMES]} if self._unregistered_ran else {})
            | outside
        )
