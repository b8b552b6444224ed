"""The shipped models: present with their provenance, loadable safely, and better than the mean image on
galaxies they never saw (rendered with a seed the training did not use)."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from galaxy_autoencoders import pretrained
from galaxy_autoencoders.config import get_profile
from galaxy_autoencoders.data import load_galaxies
from galaxy_autoencoders.inference import reconstruct_all
from galaxy_autoencoders.metrics import galaxy_colour
from galaxy_autoencoders.models import VAE, AutoEncoder

PRETRAINED = get_profile("pretrained")
FRESH_SEED = 7  # not PRETRAINED.seed


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    assert FRESH_SEED != PRETRAINED.seed
    data = load_galaxies("synthetic", n=96, seed=FRESH_SEED, data_dir=tmp_path_factory.mktemp("data"), progress=False)
    return torch.from_numpy(data.images).permute(0, 3, 1, 2).float() / 255


def test_available_lists_each_model_with_its_provenance():
    found = pretrained.available()
    assert set(found) == {"ae", "elbo", "mmd"}
    for name, info in found.items():
        prov = info["provenance"]
        assert prov["command"] == f"galaxy-ae pretrain {name} --work WORKDIR"
        assert prov["data"]["n"] >= 20_000 and prov["data"]["seed"] == PRETRAINED.seed
        assert len(prov["data"]["sha256"]) == 64
        assert prov["epochs"] >= 1 and prov["wall_s"] > 0 and prov["machine"]
        assert set(prov["versions"]) == {"torch", "fastai"}
        assert prov["metrics"]["mse_ratio"] < 1
        assert info["objective"] == name


def test_weights_are_small_float16_state_dicts_loaded_weights_only():
    total = 0
    for name in pretrained.NAMES:
        path = pretrained.WEIGHTS / f"{name}.pt"
        total += path.stat().st_size
        state = torch.load(path, weights_only=True)
        assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert total < 25_000_000


@pytest.mark.parametrize("name", pretrained.NAMES)
def test_each_model_beats_the_mean_image_on_fresh_galaxies(name, fresh):
    model = pretrained.load(name)
    assert isinstance(model, AutoEncoder if name == "ae" else VAE) and not model.training
    assert model.config.latent_size == 20 and model.config.widths[0] >= 32
    x, recon = reconstruct_all(model, fresh)
    mse = (recon - x).pow(2).mean().item()
    mean_image_mse = (x - x.mean(0)).pow(2).mean().item()  # the mean of these very galaxies: a strict baseline
    assert mse < 0.6 * mean_image_mse
    assert spearmanr(galaxy_colour(recon, x), galaxy_colour(x)).statistic > 0.7  # colours kept, not a grey average
    assert np.percentile(recon, 99) > 0.8 * np.percentile(x, 99)  # and the bright cores


def test_unknown_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        pretrained.load("gan")


def test_missing_weights_say_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path)
    with pytest.raises(FileNotFoundError, match="galaxy-ae pretrain mmd --work DIR"):
        pretrained.load("mmd")
    assert pretrained.available() == {}
