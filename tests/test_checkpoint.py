"""Checkpoints: exact round trip, model card, atomic overwrite, clear errors, body transfer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import jetlab
import jetlab.model
from jetlab.data.preprocess import JET_INPUTS, PARTICLE_INPUTS, Standardizer
from jetlab.model import PET, CheckpointError, ConfigMismatchError, ModelCard, PETConfig, load, load_body_into, save

torch.set_num_threads(2)


def inputs(seed=0, b=3, p=9):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(p).unsqueeze(0) < torch.tensor([p, 4, 1]).unsqueeze(1)
    return torch.randn(b, p, 13, generator=g) * mask.unsqueeze(-1), mask, torch.randn(b, 4, generator=g)


def standardizer():
    rng = np.random.default_rng(0)
    return Standardizer(*(rng.normal(size=n).astype(np.float32) for n in (13, 13, 4, 4)))


@pytest.fixture
def model():
    torch.manual_seed(1)
    return PET(PETConfig.tiny(num_classes=3, layer_scale_init=0.3)).eval()


def test_roundtrip_is_exact(model, tmp_path):
    std = standardizer()
    card = ModelCard(training_data="jetclass-mini", training_size=1234, standardizer=std.to_dict(),
                     metrics={"auc": 0.91}, class_names=["q", "t", "w"])
    out = save(model, tmp_path / "ckpt", card)
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "model_card.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp directories left behind
    loaded = jetlab.model.load(out)
    s1, s2 = model.state_dict(), loaded.state_dict()
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[k], s2[k]) and s1[k].dtype == s2[k].dtype for k in s1)
    x, mask, jets = inputs()
    with torch.no_grad():
        assert torch.equal(model(x, mask, jets), loaded(x, mask, jets))
        t = torch.full((3,), 0.3)
        assert torch.equal(model.denoise(x, mask, jets, t), loaded.denoise(x, mask, jets, t))
    c = loaded.card
    assert c.config == model.config.to_dict() and loaded.config == model.config
    assert c.training_data == "jetclass-mini" and c.training_size == 1234
    assert c.metrics == {"auc": 0.91} and c.class_names == ["q", "t", "w"]
    assert c.jetlab_version == jetlab.__version__ and c.created
    assert c.particle_inputs == list(PARTICLE_INPUTS) and c.jet_inputs == list(JET_INPUTS)
    np.testing.assert_array_equal(c.get_standardizer().particle_std, std.particle_std)
    on_disk = json.loads((out / "model_card.json").read_text())
    assert on_disk["config"]["projection_dim"] == 64


def test_overwrite_with_dict_card(model, tmp_path):
    path = tmp_path / "ckpt"
    save(model, path, {"training_data": "a"})
    with torch.no_grad():
        model.classifier.out.bias.add_(1.0)
    save(model, path, {"training_data": "b", "standardizer": standardizer()})
    loaded = load(path)
    assert loaded.card.training_data == "b" and loaded.card.standardizer is not None
    assert torch.equal(loaded.classifier.out.bias, model.classifier.out.bias)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a jetlab checkpoint"):
        save(model, tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="class_names has 2 names"):
        save(model, tmp_path / "bad", {"class_names": ["a", "b"]})


def test_config_mismatch_names_fields(model, tmp_path):
    path = save(model, tmp_path / "ckpt")
    load(path, config=model.config)  # equal config is fine
    with pytest.raises(ConfigMismatchError) as err:
        load(path, config=model.config.replace(k=4, num_heads=2))
    msg = str(err.value)
    assert "k: checkpoint=8 expected=4" in msg and "num_heads: checkpoint=4 expected=2" in msg
    assert err.value.diffs == {"k": (8, 4), "num_heads": (4, 2)}
    with pytest.raises(TypeError, match="is a PET checkpoint; config must be a PETConfig, got dict"):
        load(path, config={"k": 4})


def test_bad_checkpoints_give_clear_errors(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="missing model_card.json"):
        load(tmp_path / "empty")
    path = save(model, tmp_path / "ckpt")
    state = load_file(str(path / "model.safetensors"))
    state["body.embed.fc1.weight"] = torch.zeros(5, 5)
    del state["classifier.out.bias"]
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: SHA-256 [0-9a-f]{64} differs from"):
        load(path)  # the card's checksum sees the swapped file first
    card = json.loads((path / "model_card.json").read_text())
    card["weights_sha256"] = None  # as in a card written before checksums: the tensors themselves are checked
    (path / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError) as err:
        load(path)
    msg = str(err.value)
    assert "body.embed.fc1.weight: file (5, 5) vs model (128, 13)" in msg
    assert "tensors the model needs but the file lacks ['classifier.out.bias']" in msg
    card = json.loads((path / "model_card.json").read_text())
    card["config"]["widthh"] = 3
    (path / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="widthh"):
        load(path)


def test_load_body_into_new_head_size(model, tmp_path):
    path = save(model, tmp_path / "ckpt")
    torch.manual_seed(5)
    fresh = PET(model.config.replace(num_classes=2))
    report = load_body_into(fresh, path)
    assert "classifier.out.weight" in report["skipped"] and "generator.label_embed.weight" in report["skipped"]
    assert "classifier.blocks.0.attn.q.weight" in report["loaded"]
    for k, v in model.body.state_dict().items():
        assert torch.equal(v, fresh.body.state_dict()[k]), k
    x, mask, jets = inputs()
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh.body(x, mask), model.body(x, mask))
        logits = fresh(x, mask, jets)
    # the new output layer starts at zero: uniform prediction, i.e. the uninformed loss
    assert logits.shape == (3, 2) and torch.equal(logits, torch.zeros(3, 2))
    # from an in-memory model as well, and a body of another width is refused by tensor name
    assert load_body_into(PET(model.config.replace(num_classes=5)), model)["loaded"]
    wide = PET(model.config.replace(projection_dim=32))
    with pytest.raises(CheckpointError, match=r"body\.embed\.fc1\.weight"):
        load_body_into(wide, path)


def test_load_by_name_and_from_pretrain_output_dir(model, tmp_path, monkeypatch):
    monkeypatch.setenv("JETLAB_CHECKPOINTS", str(tmp_path / "named"))
    monkeypatch.setenv("JETLAB_CACHE", str(tmp_path / "cache"))
    save(model, tmp_path / "named" / "pet-unit" / "model")
    by_name = load("pet-unit")
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    assert all(torch.equal(by_name.state_dict()[k], v) for k, v in ref.items())
    # the parent directory that `jetlab pretrain` writes (holding model/) also loads
    assert load(tmp_path / "named" / "pet-unit").card.config == by_name.card.config
    with pytest.raises(FileNotFoundError, match=r"named checkpoint 'nope'.*pet-unit"):
        load("nope")
