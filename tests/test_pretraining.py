"""Training the shipped models (pretraining.py): resumable from the last finished epoch, refusing a work folder of
another recipe, and recording the recipe of the `pretrained` profile."""

import json
from dataclasses import replace

import pytest
from fastai.callback.core import Callback, CancelFitException

from galaxy_autoencoders import pretrained, pretraining
from galaxy_autoencoders.config import get_profile

PRETRAINED = get_profile("pretrained")


def test_the_shipped_models_record_the_pretrained_profiles_recipe():
    # pretraining.train of the `pretrained` profile makes these models again: their record is that profile's.
    for name, info in pretrained.available().items():
        assert info["provenance"]["recipe"] == pretraining.recipe_record(PRETRAINED), name
        assert (
            info["provenance"]["data"]["seed"] == PRETRAINED.seed and info["provenance"]["epochs"] == PRETRAINED.epochs
        )


class _StopAfterFirstEpoch(Callback):
    order = 90  # after the per-epoch checkpoint

    def after_epoch(self):
        if self.epoch == 0:
            raise CancelFitException()


def test_an_interrupted_training_resumes_from_its_last_epoch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path / "data"))
    work, out = tmp_path / "work", tmp_path / "out"
    tiny = replace(PRETRAINED, n_images=64, seed=3, widths=(4, 8), epochs=2, batch_size=32)
    with pytest.raises(RuntimeError, match="stopped after epoch 1 of 2; run the same command again"):
        pretraining.train("mmd", work, out=out, profile=tiny, extra_cbs=[_StopAfterFirstEpoch()])
    first = json.loads((work / "mmd.state.json").read_text())
    assert first["epoch"] == 0 and len(first["history"]) == 1 and not (out / "mmd.pt").exists()
    assert not (tmp_path / "models").exists() and (work / "mmd_last.pth").is_file()
    path = pretraining.train("mmd", work, out=out, profile=tiny)
    assert "resuming after epoch 1" in capsys.readouterr().out
    second = json.loads((work / "mmd.state.json").read_text())
    assert second["epoch"] == 1 and len(second["history"]) == 2
    assert second["history"][0] == first["history"][0]  # the first epoch was not trained again
    info = json.loads(path.with_suffix(".json").read_text())["extra"]
    assert info["objective"] == "mmd" and info["lam"] > 0 and info["provenance"]["epochs"] == 2
    # Run once more: nothing to train, the same model is written again, and it says so.
    pretraining.train("mmd", work, out=out, profile=tiny)
    assert "already trained" in capsys.readouterr().out


def test_a_work_folder_of_another_recipe_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path / "data"))
    work = tmp_path / "work"
    tiny = replace(PRETRAINED, n_images=64, seed=3, widths=(4, 8), epochs=1, batch_size=32)
    pretraining.train("ae", work, out=tmp_path / "out", profile=tiny)
    wider = replace(PRETRAINED, n_images=64, seed=3, widths=(8, 8), epochs=1, batch_size=32)
    with pytest.raises(ValueError, match=r"ae\.state\.json belongs to another run.*Delete"):
        pretraining.train("ae", work, out=tmp_path / "out", profile=wider)
