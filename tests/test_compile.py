"""The speed options: train.channels_last and train.compile in the trainer, serve's compiled forward, and what
they must not change (state-dict keys, the EMA's weights, the losses and images beyond float rounding)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from spadekit import inference
from spadekit.checkpoints import latest_checkpoint, load_checkpoint
from spadekit.train.ema import EMA
from spadekit.train.loop import TrainJob, train
from tests.conftest import tiny_recipe
from tests.test_inference import FP32_DB, _generator_and_input


def test_the_ema_of_a_model_compiled_in_place_runs_its_own_weights():
    """`nn.Module.compile` binds the compiled call to the model; the EMA's deep copy must not keep it (torch drops
    it from copies: this pins that), or the EMA generator would run the trained generator's weights."""
    torch.manual_seed(0)
    model = nn.Conv2d(2, 2, 1)
    model.compile()
    ema = EMA(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(ema.module(x), nn.functional.conv2d(x, ema.module.weight, ema.module.bias))


def _losses(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_compiled_channels_last_training_computes_what_eager_training_does(toy_shards, tmp_path, capsys):
    """A step with train.compile and train.channels_last against a plain step of the same recipe: the same
    checkpoint keys, losses, batch statistics, power iterations and weights up to float rounding, and the first
    step's time reported. The learning rates are tiny: Adam (beta1 = 0) moves every weight by exactly lr on its
    first step, so a gradient whose sign rounding flips would move a weight 2 lr apart
    (`test_compiled_networks_have_the_eager_gradients` compares the gradients themselves)."""
    steps = {"train.max_steps": 1, "train.ema_decay": 0.0, "model.use_vae": False, "optim.lr_G": 1e-9,
             "optim.lr_D": 1e-9}
    train(TrainJob(tiny_recipe(toy_shards, **steps), tmp_path / "eager"))
    capsys.readouterr()
    tuned = tiny_recipe(toy_shards, **steps, **{"train.compile": True, "train.channels_last": True})
    train(TrainJob(tuned, tmp_path / "tuned"))
    assert "first step, with torch.compile compiling the networks" in capsys.readouterr().out
    (eager_losses,), (tuned_losses,) = _losses(tmp_path / "eager"), _losses(tmp_path / "tuned")
    for name in ("G_GAN", "G_feat", "D_fake", "D_real"):
        assert tuned_losses[name] == pytest.approx(eager_losses[name], rel=1e-4, abs=1e-6), name
    eager, compiled = (load_checkpoint(latest_checkpoint(tmp_path / name)) for name in ("eager", "tuned"))
    for key in ("generator", "discriminator"):
        assert compiled[key].keys() == eager[key].keys()
        for name, value in compiled[key].items():
            torch.testing.assert_close(value, eager[key][name], rtol=1e-3, atol=1e-5, msg=f"{key}.{name}")


def test_compiled_networks_have_the_eager_gradients():
    """The generator and discriminator tuned as train.compile and train.channels_last tune them: the same loss
    and the same gradient for every parameter, up to float rounding."""
    from spadekit.generator import GeneratorContext, build_generator
    from spadekit.nn.discriminator import MultiscaleDiscriminator
    from spadekit.train.build import to_layout, tune
    from tests.test_inference import SPACE, _semantics

    def networks(tuned: bool):
        torch.manual_seed(0)
        generator = build_generator("spade", {"ngf": 4, "hidden": 16}, GeneratorContext(SPACE, 64))
        discriminator = MultiscaleDiscriminator(SPACE.semantic_nc + 3, 2, 8, 2, "spectralinstance")
        return [tune(m, tuned, tuned) for m in (generator, discriminator)]

    semantics = _semantics(2)
    grads = []
    for tuned in (False, True):
        generator, discriminator = networks(tuned)
        fake = generator(to_layout(semantics, tuned))
        outputs = discriminator(torch.cat([to_layout(semantics, tuned), fake], 1))
        loss = sum(o[-1].mean() for o in outputs)
        loss.backward()
        grads.append((loss.detach(), {name: p.grad for m in (generator, discriminator)
                                      for name, p in m.named_parameters()}))
    (eager_loss, eager), (tuned_loss, tuned) = grads
    torch.testing.assert_close(tuned_loss, eager_loss, rtol=1e-4, atol=1e-6)
    assert tuned.keys() == eager.keys()
    for name, grad in tuned.items():
        scale = eager[name].abs().max().item()
        torch.testing.assert_close(grad, eager[name], rtol=0, atol=1e-3 * scale + 1e-9, msg=name)


def test_the_compiled_forward_stays_within_the_fp32_tolerance():
    """`spadekit serve --compile`: the plain SPADE blocks compiled, not the fast path; the output is the plain
    module's up to float rounding, and each call's output is the caller's own."""
    plain, semantics = _generator_and_input({})
    with torch.no_grad():
        expected = plain(semantics)
    compiled = inference.prepare(copy.deepcopy(plain), torch.device("cpu"), compile=True)
    first = inference.run(compiled, semantics, None, "fp32")
    second = inference.run(compiled, semantics.flip(-1), None, "fp32")
    assert inference.psnr(first, expected) >= FP32_DB
    assert first.data_ptr() != second.data_ptr()


def test_run_copies_an_output_that_the_next_cuda_graph_replay_would_overwrite():
    class OneBuffer(nn.Module):  # as a CUDA graph replay: every call answers in the same memory
        def __init__(self):
            super().__init__()
            self.out = torch.zeros(1, 3, 4, 4)

        def forward(self, semantics, z):
            return self.out.copy_(semantics[:, :3])

    generator = OneBuffer()
    semantics = torch.rand(1, 3, 4, 4)
    assert inference.run(generator, semantics, None, "fp32").data_ptr() == generator.out.data_ptr()
    generator.replays_cuda_graphs = True  # what `inference.prepare(..., compile=True)` sets on a GPU
    out = inference.run(generator, semantics, None, "fp32")
    assert out.data_ptr() != generator.out.data_ptr() and torch.equal(out, semantics)
