"""jetlab.train: schedule, optimisers, EMA, the Trainer (exact resume, early stopping), fine-tuning,
pretraining and the ``jetlab pretrain`` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from jetlab.data.schema import write_jetset
from jetlab.data.torchdata import JetDataset
from jetlab.train import (
    Callback,
    EarlyStopping,
    Lion,
    LiveLossPlot,
    ModelEMA,
    TimeLimit,
    Trainer,
    fit_classifier,
    load_checkpoint,
    predict,
    warmup_cosine_factor,
)
from jetlab.train._ddp_selftest import TinyNet, ce_loss, synthetic_jetset


@pytest.fixture(scope="module")
def data():
    train = JetDataset(synthetic_jetset(192, p=12, seed=0))
    val = JetDataset(synthetic_jetset(64, p=12, seed=1), standardizer=train.standardizer)
    return train, val


class DropNet(TinyNet):
    """TinyNet with dropout, so exact resume must also restore the RNG stream."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.2)

    def forward(self, x, mask, jets):
        return super().forward(self.drop(x), mask, jets)


def _trainer(model, data, **kw):
    train, val = data
    opts = dict(lr=3e-3, epochs=3, batch_size=32, warmup_steps=3, device="cpu", seed=1, progress=False)
    opts.update(kw)
    return Trainer(model, ce_loss, train, val, **opts)


def _net(seed=0, cls=DropNet):
    torch.manual_seed(seed)
    return cls()


# ----------------------------------------------------------------------------- pieces
def test_warmup_cosine_factor():
    assert warmup_cosine_factor(0, 100, 9) == pytest.approx(0.1)
    assert warmup_cosine_factor(9, 100, 9) == pytest.approx(1.0)
    assert warmup_cosine_factor(9 + 91 // 2, 100, 9, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 91)))
    assert warmup_cosine_factor(100, 100, 9, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(500, 100, 0, 0.0) == 0.0


def test_lion_update_is_signed_step():
    p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = Lion([p], lr=0.1, weight_decay=0.0)
    p.grad = torch.tensor([0.3, -0.01, 0.0])
    opt.step()
    assert torch.allclose(p.detach(), torch.tensor([0.9, -1.9, 0.5]))
    assert torch.allclose(opt.state[p]["exp_avg"], 0.01 * torch.tensor([0.3, -0.01, 0.0]))
    with pytest.raises(ValueError, match="lr must be > 0"):
        Lion([p], lr=0.0)


def test_ema_average_and_swap():
    m = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(0.0)
    ema = ModelEMA(m, decay=0.5, warmup=False)
    with torch.no_grad():
        m.weight.fill_(2.0)
    ema.update(m)
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 1.0))
    with ema.swapped(m):
        assert torch.allclose(m.weight, torch.full((1, 2), 1.0))
    assert torch.allclose(m.weight, torch.full((1, 2), 2.0))
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(m, decay=1.0)


# ----------------------------------------------------------------------------- trainer
def test_trainer_learns_and_records_history(data):
    updates = []
    model = _net(cls=TinyNet)
    hist = _trainer(model, data, epochs=4, callbacks=[LiveLossPlot(updates.append, every=5)]).fit()
    assert len(hist.steps) == 4 * 6 and [e["epoch"] for e in hist.epochs] == [0, 1, 2, 3]
    assert hist.train_loss[-1] < hist.train_loss[0] - 0.05
    assert hist.val_loss[-1] < math.log(2)  # better than chance on held-out jets
    assert set(hist.steps[0]) >= {"step", "epoch", "loss", "lr", "ce"}
    assert "val_ce" in hist.epochs[0] and hist.best_epoch == int(np.argmin(hist.val_loss))
    lrs = hist.lr
    assert lrs[2] == pytest.approx(3e-3) and lrs[-1] == pytest.approx(0.0, abs=1e-12)  # warm-up, cosine to 0
    assert [u["kind"] for u in updates].count("epoch") == 4 and updates[-1]["kind"] == "end"
    assert updates[0]["history"] is hist


def test_interrupted_run_resumes_bit_identically(data, tmp_path):
    class Interrupt(Callback):
        def on_step_end(self, trainer, info):
            if info["step"] == 10:
                raise KeyboardInterrupt

    ref_model = _net()
    ref = _trainer(ref_model, data, ema_decay=0.9).fit()

    ck = tmp_path / "ck"
    model = _net()
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning, match="resume from"):
        _trainer(model, data, ema_decay=0.9, checkpoint_dir=ck, checkpoint_every=4, callbacks=[Interrupt()]).fit()
    state = load_checkpoint(ck / "last.pt")
    # last checkpoint: step 8 = mid epoch 1 (6 batches per epoch), after its 2nd batch
    assert (state["global_step"], state["epoch"], state["batch_in_epoch"]) == (8, 1, 2)
    model2 = _net(seed=123)  # different init: everything must come from the checkpoint
    hist = _trainer(model2, data, ema_decay=0.9, checkpoint_dir=ck, checkpoint_every=4).fit()
    for a, b in zip(ref_model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    assert hist.step_loss == ref.step_loss and hist.val_loss == ref.val_loss
    assert [p.name for p in ck.iterdir()] == ["last.pt"]  # no temp files left behind
    # a finished run resumes to "done" without training again
    again = _trainer(_net(seed=7), data, ema_decay=0.9, checkpoint_dir=ck).fit()
    assert again.step_loss == ref.step_loss


def test_early_stopping_restores_best_weights(data):
    train, val = data
    flipped = JetDataset(synthetic_jetset(64, p=12, seed=1), standardizer=train.standardizer, label_map={0: 1, 1: 0})
    model = _net(cls=TinyNet)
    t = Trainer(model, ce_loss, train, flipped, lr=1e-2, epochs=20, batch_size=32, warmup_steps=0, device="cpu",
                progress=False, early_stopping_patience=2)
    hist = t.fit()
    assert hist.stopped_early and len(hist.epochs) == hist.best_epoch + 3
    assert t.evaluate()["loss"] == pytest.approx(hist.best_val_loss, rel=1e-6)
    assert hist.val_loss[-1] > hist.best_val_loss


def test_param_groups_keep_their_lr_ratio(data):
    model = _net(cls=TinyNet)
    groups = [{"params": model.phi.parameters(), "lr": 1e-3}, {"params": model.rho.parameters(), "lr": 5e-3}]
    t = Trainer(model, ce_loss, data[0], param_groups=groups, epochs=1, optimizer="lion", batch_size=32,
                device="cpu", progress=False)
    t.fit()
    lr_body, lr_head = (g["lr"] for g in t.optimizer.param_groups)
    assert lr_head == pytest.approx(5 * lr_body) and lr_head < 5e-3


def test_trainer_errors(data, tmp_path):
    train, _ = data
    with pytest.raises(TypeError, match="tensor or \\(tensor, dict"):
        Trainer(_net(), lambda m, b: "nope", train, device="cpu", progress=False).fit()
    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        Trainer(_net(), lambda m, b: ce_loss(m, b)[0] * float("nan"), train, device="cpu", progress=False).fit()
    with pytest.raises(ValueError, match="early_stopping_patience needs val_data"):
        Trainer(_net(), ce_loss, train, early_stopping_patience=2)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        Trainer(_net(), ce_loss, train, optimizer="rmsprop", device="cpu", progress=False).fit()
    with pytest.raises(KeyError, match="EarlyStopping monitors 'val_loss'"):
        Trainer(_net(), ce_loss, train, epochs=1, device="cpu", progress=False, callbacks=[EarlyStopping(1)]).fit()
    with pytest.raises(RuntimeError, match="optimizer state exists only once fit"):
        Trainer(_net(), ce_loss, train, device="cpu", progress=False).save(tmp_path / "early.pt")
    assert not (tmp_path / "early.pt").exists()


def test_load_checkpoint_rejects_foreign_file(tmp_path):
    torch.save({"weights": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a jetlab trainer checkpoint"):
        load_checkpoint(tmp_path / "x.pt")


# ----------------------------------------------------------------------------- fine-tuning
def test_fit_classifier_and_predict(data):
    train, val = data
    model = _net(cls=TinyNet)
    hist = fit_classifier(model, train, val, lr_head=3e-3, epochs=3, batch_size=32, device="cpu", progress=False)
    probs = predict(model, val, batch_size=50, device="cpu")
    assert probs.shape == (64, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    acc = float((probs.argmax(1) == val.tensors["label"].numpy()).mean())
    assert acc > 0.6 and "val_acc" in hist.epochs[-1]
    assert hist.val_loss[hist.best_epoch] == hist.best_val_loss


def test_weighted_classifier_loss_uses_weights():
    from jetlab.train.finetune import classifier_loss

    class Const(nn.Module):
        def forward(self, x, mask, jets):
            return torch.zeros(len(x), 1)  # sigmoid 0.5 everywhere

    batch = {"x": torch.zeros(2, 1, 13), "mask": torch.ones(2, 1, dtype=torch.bool), "jets": torch.zeros(2, 4),
             "label": torch.tensor([0, 1]), "weight": torch.tensor([1.0, 3.0])}
    loss, parts = classifier_loss(True)(Const(), batch)
    # logit 0 predicts class 0: right only for the weight-1 jet -> weighted accuracy 1/4, unweighted 1/2
    assert float(loss) == pytest.approx(math.log(2), rel=1e-6) and parts["acc"] == pytest.approx(0.25)
    assert classifier_loss(False)(Const(), batch)[1]["acc"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- pretraining + CLI
@pytest.fixture(scope="module")
def pet_file(tmp_path_factory):
    js = synthetic_jetset(96, p=16, seed=2)
    path = tmp_path_factory.mktemp("pt") / "mini.h5"
    write_jetset(path, js, dataset="toy-mini", label_names=["narrow", "wide"])
    return path


def test_pretrain_pet_writes_model_with_card(pet_file, tmp_path):
    import jetlab.model
    from jetlab.train import pretrain

    model, hist = pretrain(pet_file, tmp_path / "run", epochs=1, batch_size=32, n_val=32, device="cpu",
                           progress=False, max_particles=12)
    assert len(hist.steps) == 2 and hist.epochs[0]["val_loss"] > 0
    assert {"val_ce", "val_mse", "val_diff"} <= set(hist.epochs[0])
    loaded = jetlab.model.load(tmp_path / "run" / "model")
    card = loaded.card
    assert card.training_data == "toy-mini" and card.training_size == 64
    assert card.class_names == ["narrow", "wide"]
    # the card's validation accuracy is the saved model's on the 32 held-out jets, recomputed here
    # (pretrain's random split with its default seed 0; a wrong split, label order or model fails)
    from jetlab.data.schema import read_jetset
    from jetlab.data.torchdata import split_indices
    from jetlab.train.finetune import predict

    js = read_jetset(pet_file)
    _, val_idx = split_indices(len(js), (len(js) - 32, 32), seed=0)
    val = JetDataset(js, indices=val_idx, standardizer=card.get_standardizer(), max_particles=12)
    pred = np.argmax(predict(loaded, val), -1)
    assert card.metrics["val_accuracy"] == pytest.approx(np.mean(pred == js.labels[val_idx]))
    assert card.get_standardizer().particle_mean.shape == (13,)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "run" / "trainer" / "last.pt").exists()


def test_cli_pretrain(pet_file, tmp_path, capsys):
    from jetlab.cli.main import main

    rc = main(["pretrain", "--data", str(pet_file), "--out", str(tmp_path / "cli"), "--max-steps", "2",
               "--batch-size", "32", "--n-val", "32", "--device", "cpu", "--no-progress", "--max-particles", "8"])
    assert rc == 0
    assert "saved" in capsys.readouterr().out
    card = json.loads((tmp_path / "cli" / "model" / "model_card.json").read_text())
    assert card["metrics"]["steps"] == 2 and card["config"]["num_classes"] == 2
    rc = main(["pretrain", "--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x"), "--no-progress"])
    assert rc == 2
    assert "missing.h5 does not exist" in capsys.readouterr().err


def test_time_limit_stops_after_the_step_that_crosses_it(data, monkeypatch):
    """A fake clock advancing 1 s per step: a 4.5 s limit stops after step 5 (the first past 4.5 s),
    mid-epoch, where 3 epochs would have been 18 steps; the epoch record is still written."""
    import jetlab.train.callbacks as cb

    clock = iter(float(i) for i in range(1000))
    monkeypatch.setattr(cb.time, "monotonic", lambda: next(clock))
    limit = TimeLimit(4.5)
    hist = _trainer(_net(cls=TinyNet), data, callbacks=[limit]).fit()
    assert limit.stopped and len(hist.steps) == 5 and len(hist.epochs) == 1
    with pytest.raises(ValueError, match="TimeLimit: seconds must be > 0, got 0"):
        TimeLimit(0)


def test_time_limit_does_not_stop_a_run_that_fits(data):
    limit = TimeLimit(3600)
    hist = _trainer(_net(cls=TinyNet), data, callbacks=[limit]).fit()
    assert not limit.stopped and len(hist.steps) == 3 * 6


def test_auto_precision_is_float32_and_autocast_stays_on_request(data):
    # "auto" is full precision (bf16 autocast was slower for PET on an H200); asking still gives autocast
    assert _trainer(_net(), data)._amp_dtype() is None
    assert _trainer(_net(), data, amp="bf16")._amp_dtype() == torch.bfloat16
    assert _trainer(_net(), data, amp="fp16")._amp_dtype() == torch.float16
    with pytest.raises(ValueError, match="amp must be"):
        _trainer(_net(), data, amp="tf32")


def test_tf32_inference_only_on_cuda_and_always_put_back():
    from jetlab.train import tf32_inference

    before = torch.get_float32_matmul_precision()
    assert before == "highest"  # PyTorch's default: exact float32 matmuls
    with tf32_inference("cpu"):
        assert torch.get_float32_matmul_precision() == "highest"
    with pytest.raises(RuntimeError, match="boom"), tf32_inference(torch.device("cuda", 0)):
        # the setting alone (no GPU needed to change it): TF32 tensor cores for float32 matmuls
        assert torch.get_float32_matmul_precision() == "high"
        raise RuntimeError("boom")
    assert torch.get_float32_matmul_precision() == "highest"


def test_predict_leaves_matmul_precision_alone_on_cpu(data, monkeypatch):
    seen = []
    net = _net(cls=TinyNet).eval()
    forward = net.forward

    def spy(*a, **k):
        seen.append(torch.get_float32_matmul_precision())
        return forward(*a, **k)

    monkeypatch.setattr(net, "forward", spy)
    p = predict(net, data[1], batch_size=32, device="cpu")
    assert len(p) == 64
    assert seen and set(seen) == {"highest"}
