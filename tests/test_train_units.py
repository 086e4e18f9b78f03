"""Pieces of branch training: aggregation, augmentation, models, configs, CLI parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmdf.run_config import load_config
from mmdf.errors import MmdfError
from mmdf.train.aggregate import aggregate_clips, confident_rule, sigmoid
from mmdf.train.branches import get_branch
from mmdf.prepare.store import load_crops
from mmdf.train.branches.audio import AudioAugConfig, AudioBranchConfig, AudioTTAConfig, SpecAugment
from mmdf.train.branches.visual import VisualAugConfig, VisualBranchConfig, VisualTTAConfig, face_augment
from mmdf.train.cli import parse_folds
from mmdf.train.config import ModelConfig
from mmdf.train.models import create_model, load_weights
from train_factory import make_manifest, tiny_config

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- aggregation

def test_aggregate_methods_per_clip():
    probs = np.array([0.1, 0.2, 0.9, 0.95, 0.99, 0.5])
    logits = np.log(probs / (1 - probs))
    clip = np.array([0, 0, 1, 1, 1, 2])
    mean_logit = aggregate_clips(logits, clip, "mean_logit")
    assert mean_logit[0] == pytest.approx(sigmoid(logits[:2].mean()))
    assert aggregate_clips(logits, clip, "mean")[1] == pytest.approx(np.mean([0.9, 0.95, 0.99]))
    assert aggregate_clips(logits, clip, "median")[1] == pytest.approx(0.95)
    assert aggregate_clips(logits, clip, "topk", topk=2)[1] == pytest.approx(np.mean([0.95, 0.99]))
    assert list(mean_logit.index) == [0, 1, 2]
    assert mean_logit[2] == pytest.approx(0.5)


def test_confident_rule_follows_dfdc_winner():
    # Enough confident fakes: average only those.
    assert confident_rule(np.array([0.9, 0.95, 0.85, 0.1, 0.2])) == pytest.approx(0.9)
    # Nearly all confidently real: average only those.
    assert confident_rule(np.array([0.05] * 10 + [0.15] * 10)) == pytest.approx(0.1)
    # Otherwise the plain mean.
    assert confident_rule(np.array([0.4, 0.6, 0.5])) == pytest.approx(0.5)


# --------------------------------------------------------------------------- augmentation

def _mel(h=16, w=16):
    x = torch.zeros(1, h, w)
    x[:, :4] = 1.0  # the lowest mel bands are loud
    return x


def test_spec_augment_keeps_frequencies_in_place_by_default():
    torch.manual_seed(0)
    aug = SpecAugment(AudioAugConfig(time_masks=0, freq_masks=0))
    for _ in range(20):
        out = aug(_mel())
        assert out[:, :4].mean() == 1.0 and out[:, 4:].mean() == 0.0  # time shift only


def test_spec_augment_vflip_option_and_masks():
    torch.manual_seed(0)
    flipped = SpecAugment(AudioAugConfig(time_shift=0, time_masks=0, freq_masks=0, vflip=1.0))(_mel())
    assert flipped[:, -4:].mean() == 1.0
    x = torch.rand(1, 32, 32) + 1.0
    masked = SpecAugment(AudioAugConfig(time_shift=0, time_masks=1, time_mask_width=0.5,
                                        freq_masks=0))(x)
    changed = (masked != x).any(dim=(0, 1))  # masked time columns
    assert 0 < changed.sum() <= 16 and masked.shape == x.shape


def test_face_augment_output_and_tta_views():
    torch.manual_seed(0)
    face = torch.randint(0, 255, (3, 40, 40), dtype=torch.uint8)
    out = face_augment(VisualAugConfig(blur=1.0, jpeg=1.0), 32)(face)
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
    batch = torch.rand(2, 3, 8, 8)
    visual, audio = get_branch("visual"), get_branch("audio")
    views = visual.tta_views(batch, VisualBranchConfig(tta=VisualTTAConfig(hflip=True)))
    assert len(views) == 2 and torch.equal(views[1], batch.flip(-1))
    assert len(visual.tta_views(batch, VisualBranchConfig())) == 1
    shifted = audio.tta_views(batch, AudioBranchConfig(tta=AudioTTAConfig(time_shifts=[0.25])))
    assert len(shifted) == 2 and torch.equal(shifted[1], torch.roll(batch, 2, dims=-1))


# --------------------------------------------------------------------------- models

def test_unknown_model_is_a_clear_error():
    with pytest.raises(MmdfError, match="timm has no model 'efficientnet_b99'"):
        create_model(ModelConfig(name="efficientnet_b99", pretrained=False), "train.audio.model")


def test_pretrained_offline_says_what_to_set(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(MmdfError, match=r"train.visual.model.pretrained=false or train.visual.model.checkpoint=PATH"):
        create_model(ModelConfig(name="test_efficientnet", pretrained=True), "train.visual.model")


def test_checkpoint_loading(tmp_path):
    src = create_model(ModelConfig(name="test_efficientnet", pretrained=False, in_chans=1))
    path = tmp_path / "w.pt"
    torch.save({"model": src.state_dict()}, path)
    dst = create_model(ModelConfig(name="test_efficientnet", pretrained=False, in_chans=1,
                                   checkpoint=str(path)))
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k])
    other = create_model(ModelConfig(name="test_resnet", pretrained=False))
    with pytest.raises(MmdfError, match="matches only"):
        load_weights(other, path, "train.visual.model")
    with pytest.raises(MmdfError, match="file not found"):
        load_weights(other, tmp_path / "absent.pt")


# --------------------------------------------------------------------------- datasets

def test_datasets_shapes_and_missing_cache_error(tmp_path):
    manifest = make_manifest(tmp_path, n_train=6, n_val=0, n_test=0, frames=3)
    cfg = tiny_config(tmp_path).train
    audio, visual = get_branch("audio"), get_branch("visual")
    ok = visual.usable(manifest)
    assert ok.sum() == 4  # two no_face clips
    faces = visual.dataset(manifest[ok], cfg.visual, [0.5] * 3, [0.5] * 3, train=True)
    assert len(faces) == 12 and faces[0][0].shape == (3, 32, 32)
    cfg.visual.center_crop = 0.5
    tight = visual.dataset(manifest[ok], cfg.visual, [0.5] * 3, [0.5] * 3, train=False)
    raw = load_crops(manifest[ok]["faces_file"].iloc[0])[0, 8:24, 8:24]  # central half of 32 px
    expected = (torch.nn.functional.interpolate(torch.from_numpy(raw).permute(2, 0, 1)[None].float(),
                size=32, mode="bilinear", antialias=True)[0] / 255 - 0.5) / 0.5
    assert torch.allclose(tight[0][0], expected, atol=0.02)
    mel = audio.dataset(manifest[audio.usable(manifest)], cfg.audio, [0.5], [0.5], train=False)
    x, y, i = mel[1]
    assert x.shape == (1, 32, 32) and y.item() in (0.0, 1.0) and i == 1
    Path(manifest.loc[5, "mel_file"]).unlink()
    with pytest.raises(MmdfError, match="cache is incomplete"):
        audio.usable(manifest)


# --------------------------------------------------------------------------- configs and CLI

CONFIGS = ["configs/audio.yaml", "configs/visual.yaml", "configs/demo/audio.yaml", "configs/demo/visual.yaml"]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_train_config_loads(name):
    if name.startswith("configs/demo/") and not (REPO / "configs/demo/data.yaml").is_file():
        pytest.skip("configs/demo/data.yaml (the demo data config) is not written yet")
    cfg = load_config(REPO / name)
    assert cfg.train.epochs >= 1


def test_reference_recipe_is_adam_steplr():
    from mmdf.experiment.spec import load_experiment

    exp = load_experiment(REPO / "experiments/audio_reference_recipe.yaml")
    trials = {t.variant: t.configs["audio"] for t in exp.trials}
    cfg = trials["reference"]
    assert (cfg.train.optimizer.name, cfg.train.optimizer.lr) == ("adam", 3e-3)
    sched = cfg.train.schedule
    assert (sched.name, sched.decay_epochs, sched.decay_rate) == ("step", 4, 0.85)
    assert cfg.train.audio.model.in_chans == 3 and cfg.train.audio.model.name == "efficientnet_b1"
    assert trials["ours"] == load_config(REPO / "configs/audio.yaml", ["experiment=audio_reference_recipe/ours"])
    vflip = {t.name: t.configs["audio"].train.audio.augment.vflip
             for t in load_experiment(REPO / "experiments/audio_vflip.yaml").trials}
    assert vflip == {f"{v}/seed-{s}": f for v, f in (("no_flip", 0.0), ("vflip", 0.5)) for s in range(3)}


def test_parse_folds():
    assert parse_folds("0,2") == [0, 2]
    assert parse_folds(None) is None
    with pytest.raises(MmdfError, match="--folds"):
        parse_folds("a,b")


def test_cli_reports_missing_manifest(tmp_path, capsys):
    from mmdf.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(f"runs_dir: {tmp_path / 'runs'}\ndata:\n  root: {tmp_path / 'nodata'}\n")
    rc = main(["train", "audio", "--config", str(config), "train.epochs=1", "--folds", "0"])
    assert rc == 2
    assert "mmdf train: error:" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
