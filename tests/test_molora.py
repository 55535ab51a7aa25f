"""MoLoRA: wrapping by name, zero-initialised updates, merge/unmerge, gradients, save/load."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from adamesh.errors import AdameshError
from adamesh.models.expression import MOLORA_TARGETS, ExpressionConfig, ExpressionModel
from adamesh.models.molora import (
    AdapterSpec,
    MoLoRALayer,
    adapter_layers,
    adapter_state_dict,
    add_molora,
    average_adapters,
    load_adapter_state,
    merge_adapters,
    remove_molora,
    set_active_branches,
    set_adapters_enabled,
    train_only_adapters,
    unmerge_adapters,
)
from adamesh.train.presets import PRESETS


def tiny_model(seed=0) -> ExpressionModel:
    torch.manual_seed(seed)
    return ExpressionModel(
        ExpressionConfig(feature_dim=12, out_dim=6, identity_dim=4, **PRESETS["tiny"]["expression"])
    ).eval()


def randomise_adapters(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.1)
            layer.gate.copy_(torch.rand(layer.gate.shape, generator=g) + 0.5)


def run(model, x):
    style = model.style(torch.rand(1, 30, 6, generator=torch.Generator().manual_seed(3)))
    return model(x, style)[1]


def test_wraps_every_target_kind_including_depthwise_convolutions():
    model = tiny_model()
    names = add_molora(model, AdapterSpec((1, 2, 4), targets=MOLORA_TARGETS))
    kinds = {type(adapter_layers(model)[n].base).__name__ for n in names}
    assert kinds == {"Linear", "Conv1d"}
    depthwise = [adapter_layers(model)[n] for n in names if n.endswith("depthwise")]
    assert depthwise and all(layer.base.groups == layer.base.in_channels for layer in depthwise)
    assert all(
        n.rpartition(".")[2]
        in {"q", "k", "v", "o", "fc1", "fc2", "pointwise_in", "depthwise", "pointwise_out", "0", "2"}
        or "_" in n
        for n in names
    )
    with pytest.raises(AdameshError, match="no Linear or Conv1d"):
        add_molora(tiny_model(), AdapterSpec(targets=["*.no_such_layer"]))


def test_untrained_adapter_leaves_the_output_unchanged():
    model, x = tiny_model(), torch.randn(2, 40, 12)
    before = run(model, x)
    add_molora(model, AdapterSpec((1, 2, 4), targets=MOLORA_TARGETS))
    torch.testing.assert_close(run(model, x), before, rtol=0, atol=0)


def test_merged_and_unmerged_give_the_same_output_and_unmerge_restores_the_base():
    model, x = tiny_model(), torch.randn(2, 40, 12)
    base_out = run(model, x)
    base_weights = {k: v.clone() for k, v in model.state_dict().items()}
    add_molora(model, AdapterSpec((1, 2, 4), targets=MOLORA_TARGETS))
    randomise_adapters(model)
    adapted = run(model, x)
    assert (adapted - base_out).abs().max() > 1e-3  # the adapter does something
    merge_adapters(model)
    torch.testing.assert_close(run(model, x), adapted, rtol=1e-4, atol=1e-5)
    set_adapters_enabled(model, False)  # merged weights stay merged even when disabled
    unmerge_adapters(model)
    torch.testing.assert_close(run(model, x), base_out, rtol=1e-4, atol=1e-5)
    set_adapters_enabled(model, True)
    torch.testing.assert_close(run(model, x), adapted, rtol=1e-4, atol=1e-5)
    remove_molora(model)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, base_weights[k], rtol=0, atol=1e-6)


def test_only_adapter_parameters_receive_gradients():
    model, x = tiny_model(), torch.randn(2, 40, 12)
    add_molora(model, AdapterSpec((1, 2, 4), targets=MOLORA_TARGETS))
    randomise_adapters(model)  # with B = 0 the gradient of A would be zero
    trainable = train_only_adapters(model)
    run(model, x).square().mean().backward()
    named = dict(model.named_parameters())
    got = {n for n, p in named.items() if p.grad is not None and p.grad.abs().sum() > 0}
    assert got and all(n.endswith(("lora_A", "lora_B", "gate")) for n in got)
    assert {id(p) for p in trainable} == {
        id(named[n]) for n in named if n.endswith(("lora_A", "lora_B", "gate"))
    }
    assert all(named[n].grad is None for n in named if not n.endswith(("lora_A", "lora_B", "gate")))


def test_plain_sum_freezes_the_gates_and_single_lora_is_one_branch():
    model = tiny_model()
    add_molora(model, AdapterSpec((7,), combine="sum", targets=["*.fc1"]))
    layer = next(iter(adapter_layers(model).values()))
    assert layer.ranks == (7,) and layer.lora_A.shape[0] == 7
    params = train_only_adapters(model)
    assert all(p is not layer.gate for p in params)


def test_mixture_equals_the_sum_of_its_branches():
    torch.manual_seed(0)
    conv = nn.Conv1d(8, 8, 5, padding=2, groups=8)
    layer = MoLoRALayer(conv, (1, 3), combine="gate")
    with torch.no_grad():
        layer.lora_B.normal_()
        layer.gate.copy_(torch.tensor([0.5, 2.0]))
    a1, a2 = layer.lora_A[:1], layer.lora_A[1:]
    b1, b2 = layer.lora_B[:, :1], layer.lora_B[:, 1:]
    expected = (0.5 * (b1 @ a1) + 2.0 * (b2 @ a2)).view(8, 1, 5)  # alpha = r: scale 1 per branch
    torch.testing.assert_close(layer.delta(), expected)


def test_only_adapter_tensors_carry_an_adaptation_to_a_fresh_model():
    model, x = tiny_model(), torch.randn(1, 30, 12)
    add_molora(model, AdapterSpec((1, 2), targets=MOLORA_TARGETS))
    randomise_adapters(model)
    expected = run(model, x)
    saved = adapter_state_dict(model)
    assert saved and all(k.endswith(("lora_A", "lora_B", "gate")) for k in saved)
    fresh = tiny_model()
    add_molora(fresh, AdapterSpec((1, 2), targets=MOLORA_TARGETS))
    load_adapter_state(fresh, saved)
    torch.testing.assert_close(run(fresh, x), expected)
    other = tiny_model()
    add_molora(other, AdapterSpec((4,), targets=MOLORA_TARGETS))
    with pytest.raises(AdameshError, match="does not fit"):
        load_adapter_state(other, saved)


def test_averaged_adapters_change_the_weights_by_the_mean_of_the_members():
    members, deltas = [], []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)  # each member its own A
        model = tiny_model()
        add_molora(model, AdapterSpec((1, 2), alpha=4.0, targets=MOLORA_TARGETS))
        randomise_adapters(model, seed)
        members.append(adapter_state_dict(model))
        deltas.append({n: layer.delta() for n, layer in adapter_layers(model).items()})
    model = tiny_model()
    add_molora(model, AdapterSpec((1, 2) * 3, alpha=4.0, targets=MOLORA_TARGETS))
    load_adapter_state(model, average_adapters(members))
    for name, layer in adapter_layers(model).items():
        torch.testing.assert_close(layer.delta(), sum(d[name] for d in deltas) / 3)


def test_nested_training_uses_and_trains_only_the_first_branches():
    model = tiny_model()
    add_molora(model, AdapterSpec((1, 2, 4), targets=MOLORA_TARGETS))
    randomise_adapters(model)
    x = torch.rand(1, 20, 12, generator=torch.Generator().manual_seed(2))
    full = run(model, x)
    # the first branch alone: the same as zeroing the other branches' B columns
    set_active_branches(model, 1)
    first = run(model, x)
    reference = copy.deepcopy(model)
    set_active_branches(reference, None)
    with torch.no_grad():
        for layer in adapter_layers(reference).values():
            layer.lora_B[:, 1:] = 0
    assert torch.allclose(first, run(reference, x), atol=1e-6)
    assert not torch.allclose(first, full, atol=1e-4)
    train_only_adapters(model)
    run(model, x).square().sum().backward()
    for layer in adapter_layers(model).values():
        assert layer.lora_B.grad[:, 1:].abs().max() == 0  # branches 2 and 3 get nothing this step
        assert layer.gate.grad[1:].abs().max() == 0
    assert any(layer.lora_B.grad[:, :1].abs().max() > 0 for layer in adapter_layers(model).values())
    with pytest.raises(RuntimeError):
        merge_adapters(model)  # merging a partial adapter would bake in the wrong weights
    set_active_branches(model, None)
    merge_adapters(model)
    assert torch.allclose(run(model, x), full, atol=1e-5)
