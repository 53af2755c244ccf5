"""Every compared model runs every synthetic task at any length; specs and training validate their inputs."""

from __future__ import annotations

import pytest
import torch

from xlstm_seq_bench.synthetic import MODEL_KINDS, TASKS, ModelSpec, build_model, count_parameters, make_task
from xlstm_seq_bench.synthetic.training import TaskSetup, TrainSettings, accuracy, train_and_evaluate

TINY = {"embedding_dim": 8, "num_blocks": 2, "num_heads": 2}


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_model_runs_every_task_at_any_length(kind, name):
    torch.manual_seed(0)
    task = make_task(name, **({"num_pairs": 2, "vocab_size": 9} if name == "mqar" else {}))
    model = build_model(ModelSpec(kind, **TINY), task, context_length=37)
    for length in sorted({task.min_length, 7, 37}):
        batch = task.sample(3, length, seed=length)
        logits = model(batch.inputs)
        assert logits.shape == (3, length, task.num_classes)
        assert torch.isfinite(logits).all()
    # Gradients reach the encoder through the backbone.
    logits.sum().backward()
    assert model.encoder.weight.grad is not None and model.encoder.weight.grad.abs().sum() > 0


def test_models_are_causal():
    """Changing the last input must not change earlier predictions (no model peeks ahead)."""
    task = make_task("parity")
    batch = task.sample(2, 12, seed=0)
    flipped = batch.inputs.clone()
    flipped[:, -1] = 1 - flipped[:, -1]
    for kind in MODEL_KINDS:
        model = build_model(ModelSpec(kind, **TINY), task, context_length=12).eval()
        with torch.no_grad():
            before, after = model(batch.inputs), model(flipped)
        torch.testing.assert_close(before[:, :-1], after[:, :-1], msg=f"{kind} is not causal")


def test_parameter_counts_and_transformer_positions():
    task = make_task("parity")
    gpt = build_model(ModelSpec("gpt2", embedding_dim=16, num_blocks=1, num_heads=2), task, context_length=100)
    full = sum(p.numel() for p in gpt.parameters())
    assert count_parameters(gpt) == full
    assert count_parameters(gpt, trained_length=20) == full - 80 * 16
    lstm = build_model(ModelSpec("lstm", embedding_dim=16, num_blocks=1), task, context_length=100)
    # Embedding 2x16, LSTM 4 * 16 * (16 + 16 + 2), head 16x2 + 2.
    assert count_parameters(lstm, trained_length=20) == 2 * 16 + 4 * 16 * 34 + 16 * 2 + 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(kind="mamba"), "model kind must be one of"),
        (dict(kind="xlstm[1:1]", num_blocks=3), "even num_blocks"),
        (dict(kind="gpt2", embedding_dim=10, num_heads=4), "divisible by num_heads"),
        (dict(kind="lstm", learning_rate=0.0), "learning_rate must be > 0"),
        (dict(kind="lstm", embedding_dim=0), "embedding_dim must be an int >= 1"),
        (dict(kind="xlstm[0:1]", embedding_dim=12, slstm_heads=5), "slstm_heads must divide embedding_dim"),
        (dict(kind="xlstm[0:1]", slstm_conv_kernel=0), "slstm_conv_kernel must be >= 1"),
        (dict(kind="xlstm[1:0]", mlstm_conv_kernel=0), "mlstm_conv_kernel must be >= 1"),
        (dict(kind="xlstm[1:0]", mlstm_qkv_blocksize=0), "mlstm_qkv_blocksize must be >= 1"),
    ],
)
def test_bad_model_spec_is_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec(**kwargs)


def test_wrong_input_kind_is_a_type_error():
    model = build_model(ModelSpec("lstm", **TINY), make_task("parity"), context_length=8)
    with pytest.raises(TypeError, match="int64 tensor"):
        model(torch.zeros(2, 5))
    model = build_model(ModelSpec("lstm", **TINY), make_task("nearest_neighbour"), context_length=8)
    with pytest.raises(TypeError, match="float tensor"):
        model(torch.zeros(2, 5, dtype=torch.int64))


def test_accuracy_counts_only_scored_positions():
    batch = make_task("parity").sample(4, 6, seed=1)
    perfect = torch.nn.functional.one_hot(batch.targets, 2).float()  # (B, T, 2)
    assert accuracy(perfect, batch) == (4, 4)
    wrong_last = perfect.clone()
    wrong_last[:, -1] = 1 - wrong_last[:, -1]
    wrong_elsewhere = perfect.clone()
    wrong_elsewhere[:, :-1] = 1 - wrong_elsewhere[:, :-1]
    assert accuracy(wrong_last, batch) == (0, 4)
    assert accuracy(wrong_elsewhere, batch) == (4, 4)


def test_training_learns_an_easy_task_and_is_reproducible():
    """The LSTM learns 2-pair associative recall at the training length within 400 fast steps."""
    setup = TaskSetup("mqar", {"num_pairs": 2, "vocab_size": 9}, train_length=8, min_train_length=6)
    spec = ModelSpec("lstm", embedding_dim=32, num_blocks=1, learning_rate=1e-2)
    settings = TrainSettings(steps=400, batch_size=32, warmup_steps=10, eval_sequences=256, log_every=50)
    first = train_and_evaluate(setup, spec, seed=0, settings=settings, test_lengths=[8, 16])
    assert first["accuracy"][8] > 0.9, first["accuracy"]
    assert first["history"][-1][1] < first["history"][0][1]
    again = train_and_evaluate(setup, spec, seed=0, settings=settings.replace(steps=20), test_lengths=[8])
    twice = train_and_evaluate(setup, spec, seed=0, settings=settings.replace(steps=20), test_lengths=[8])
    assert again["history"] == twice["history"] and again["accuracy"] == twice["accuracy"]


def test_task_setup_validates_lengths():
    with pytest.raises(ValueError, match="min_train_length"):
        TaskSetup("mqar", {"num_pairs": 8}, train_length=16)
    with pytest.raises(ValueError, match="unknown synthetic task"):
        TaskSetup("copy", train_length=16)


def test_xlstm_recipe_settings_reach_the_layers():
    """slstm_forget_bias, slstm_conv_kernel, mlstm_conv_kernel and mlstm_qkv_blocksize change the built layers."""
    from xlstm_seq.mlstm_layer import mLSTMLayer
    from xlstm_seq.slstm_layer import sLSTMLayer

    task = make_task("parity")
    spec = ModelSpec(
        "xlstm[1:1]",
        **TINY,
        slstm_forget_bias=-4.0,
        slstm_conv_kernel=1,
        mlstm_conv_kernel=2,
        mlstm_qkv_blocksize=8,
    )
    model = build_model(spec, task, context_length=8)
    slstm = [m for m in model.modules() if isinstance(m, sLSTMLayer)]
    mlstm = [m for m in model.modules() if isinstance(m, mLSTMLayer)]
    assert len(slstm) == 1 and len(mlstm) == 1
    assert torch.equal(slstm[0].b[1], torch.full_like(slstm[0].b[1], -4.0))  # forget-gate biases (H, D)
    assert slstm[0].config.slstm.conv_kernel_size == 1
    assert mlstm[0].config.mlstm.conv_kernel_size == 2 and mlstm[0].config.mlstm.qkv_proj_blocksize == 8
    # The default keeps the core's spread of forget biases (3..6).
    default = build_model(ModelSpec("xlstm[0:1]", **TINY), task, context_length=8)
    biases = [m.b[1] for m in default.modules() if isinstance(m, sLSTMLayer)][0]
    assert float(biases.detach().min()) == pytest.approx(3.0) and float(biases.detach().max()) == pytest.approx(6.0)


def test_slstm_input_bias_and_recurrent_learning_rate_reach_the_model_and_optimizer():
    from xlstm_seq.slstm_layer import sLSTMLayer
    from xlstm_seq_bench.synthetic.training import _parameter_groups

    spec = ModelSpec("xlstm[1:1]", **TINY, slstm_input_bias=-2.0, slstm_recurrent_lr_factor=0.25)
    model = build_model(spec, make_task("parity"), context_length=8)
    (layer,) = [m for m in model.modules() if isinstance(m, sLSTMLayer)]
    assert torch.equal(layer.b[0], torch.full_like(layer.b[0], -2.0))  # input-gate biases (H, D)
    assert not torch.equal(layer.b[1], torch.full_like(layer.b[1], -2.0))  # the forget gate keeps its init
    groups = _parameter_groups(model, spec, lr=0.01, weight_decay=0.1)
    assert [g["lr"] for g in groups] == [0.01, 0.01, 0.0025]
    assert groups[2]["params"] == [layer.R]
    grouped = [p for g in groups for p in g["params"]]
    assert len(grouped) == len(list(model.parameters())) == len({id(p) for p in grouped})
    # Without the factor the recurrent weights sit in the ordinary decayed group.
    plain = _parameter_groups(model, spec.replace(slstm_recurrent_lr_factor=None), lr=0.01, weight_decay=0.1)
    assert len(plain) == 2 and any(p is layer.R for p in plain[0]["params"])
    with pytest.raises(ValueError, match="slstm_recurrent_lr_factor must be > 0"):
        ModelSpec("xlstm[0:1]", slstm_recurrent_lr_factor=0.0)


def test_length_curriculum_grows_the_longest_training_length():
    setup = TaskSetup("parity", train_length=24, min_train_length=4, curriculum_steps=10)
    assert [setup.longest_length(s) for s in (0, 4, 9, 10, 500)] == [6, 14, 24, 24, 24]
    assert TaskSetup("parity", train_length=24, min_train_length=4).longest_length(0) == 24
    with pytest.raises(ValueError, match="curriculum_steps must be >= 1"):
        TaskSetup("parity", train_length=24, curriculum_steps=0)
