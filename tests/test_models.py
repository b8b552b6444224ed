"""Models: exact shapes for odd image sizes, the VAE's sampling, gradients, and checkpoints that refuse bad files."""

import json
from pathlib import Path

import pytest
import torch

from galaxy_autoencoders.losses import reconstruction_loss
from galaxy_autoencoders.models import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    VAE,
    AutoEncoder,
    ModelConfig,
    build_model,
    checkpoint_info,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
)

TINY = ModelConfig(latent_size=6, widths=(4, 8, 8, 8))


def test_default_model_sizes():
    config = ModelConfig()
    assert config.latent_size == 20
    assert config.feature_sizes == (69, 35, 18, 9, 5)
    n = count_parameters(build_model(config))
    assert 200_000 < n < 2_000_000


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_forward_shapes_and_range(kind):
    model = build_model(ModelConfig(kind=kind, latent_size=7, widths=(4, 8, 8, 8)))
    x = torch.rand(5, 3, 69, 69)
    out = model(x)
    if kind == "vae":
        assert isinstance(model, VAE)
        recon, mu, logvar = out
        assert mu.shape == logvar.shape == (5, 7)
        assert model.encode(x)[0].shape == (5, 7)
    else:
        assert isinstance(model, AutoEncoder)
        recon = out
        assert model.encode(x).shape == (5, 7)
    assert recon.shape == (5, 3, 69, 69)
    assert recon.min() >= 0 and recon.max() <= 1
    assert model.decode(torch.randn(2, 7)).shape == (2, 3, 69, 69)


@pytest.mark.parametrize("size", [69, 64, 33, 70])
def test_decoder_lands_exactly_on_input_size(size):
    model = build_model(ModelConfig(img_size=size, widths=(4, 4, 4, 4), latent_size=3)).eval()
    assert model(torch.rand(2, 3, size, size))[0].shape == (2, 3, size, size)


def test_no_interpolation_in_the_model():
    model = build_model(ModelConfig())
    names = {type(m).__name__ for m in model.modules()}
    assert not names & {"Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d"}


def test_vae_samples_in_training_and_uses_the_mean_in_eval():
    torch.manual_seed(0)
    model = build_model(TINY)
    x = torch.rand(4, 3, 69, 69)
    model.train()
    a, mu, _ = model(x)
    b, _, _ = model(x)
    assert not torch.allclose(a, b)  # two different samples z
    model.eval()
    c, mu, _ = model(x)
    d, _, _ = model(x)
    assert torch.equal(c, d)
    assert torch.allclose(c, model.decode(mu))


def test_gradients_reach_encoder_and_logvar_through_the_sample():
    torch.manual_seed(0)
    model = build_model(TINY).train()
    x = torch.rand(4, 3, 69, 69)
    recon, _, _ = model(x)
    # Reconstruction alone: logvar influences it only through z = mu + exp(logvar / 2) * eps.
    reconstruction_loss(recon, x).backward()
    assert model.to_logvar.weight.grad.abs().sum() > 0
    assert model.to_mu.weight.grad.abs().sum() > 0
    assert model.encoder.convs[0].weight.grad.abs().sum() > 0


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="norm"):
        ModelConfig(norm="layer")
    with pytest.raises(ValueError, match="kind"):
        ModelConfig(kind="gan")
    with pytest.raises(ValueError, match="latent_size"):
        ModelConfig(latent_size=0)
    for bad in ({"channels": 0}, {"img_size": 1}):
        with pytest.raises(ValueError, match="img_size and channels"):
            ModelConfig(**bad)


def test_the_smallest_configs_build_one_latent_number_and_single_band_images():
    model = build_model(ModelConfig(latent_size=1, channels=1, widths=(4, 4, 4, 4))).eval()
    recon, mu, logvar = model(torch.rand(2, 1, 69, 69))  # one band, as an astronomer's own cutouts may be
    assert recon.shape == (2, 1, 69, 69) and mu.shape == logvar.shape == (2, 1)
    assert ModelConfig(img_size=2).img_size == 2  # the smallest image the check allows
    with pytest.raises(ValueError, match="Unknown ModelConfig fields"):
        ModelConfig.from_dict({"latent_size": 3, "depth": 4})


def test_norm_none_has_no_batchnorm():
    model = build_model(ModelConfig(norm="none", widths=(4, 4, 4, 4)))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


# ----------------------------------------------------------------------------------------------------------
# Checkpoints


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_checkpoint_round_trip(tmp_path, kind):
    torch.manual_seed(0)
    config = ModelConfig(kind=kind, latent_size=5, widths=(4, 8, 8, 8), norm="batch")
    model = build_model(config)
    model.train()(torch.rand(8, 3, 69, 69))  # move the BatchNorm running statistics away from their init
    model.eval()
    save_checkpoint(model, tmp_path / "run" / "elbo", extra={"objective": "elbo", "epochs": 3})
    assert (tmp_path / "run" / "elbo.pt").is_file() and (tmp_path / "run" / "elbo.json").is_file()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["elbo.json", "elbo.pt"]  # no temp files
    save_checkpoint(model, tmp_path / "runs" / "2026" / "elbo")  # folders that do not exist yet are made
    assert load_checkpoint(tmp_path / "runs" / "2026" / "elbo").config == config

    loaded = load_checkpoint(tmp_path / "run" / "elbo.pt")  # either file name or the stem works
    assert type(loaded) is type(model) and loaded.config == config and not loaded.training
    x = torch.rand(3, 3, 69, 69)
    out_a, out_b = model(x), loaded(x)
    out_a, out_b = (out_a, out_b) if kind == "vae" else ((out_a,), (out_b,))
    for a, b in zip(out_a, out_b, strict=True):
        assert torch.equal(a, b)

    meta = json.loads((tmp_path / "run" / "elbo.json").read_text())
    assert meta["config"]["latent_size"] == 5 and meta["config"]["widths"] == [4, 8, 8, 8]
    assert checkpoint_info(tmp_path / "run" / "elbo")["extra"] == {"objective": "elbo", "epochs": 3}
    assert meta["format"] == CHECKPOINT_FORMAT and meta["version"] == CHECKPOINT_VERSION


def test_checkpoint_loads_to_the_requested_device(tmp_path):
    save_checkpoint(build_model(TINY), tmp_path / "m")
    loaded = load_checkpoint(tmp_path / "m", map_location="cpu")
    assert all(p.device.type == "cpu" for p in loaded.parameters())


def test_a_checkpoint_saved_on_a_gpu_loads_on_a_cpu_only_machine(tmp_path, monkeypatch):
    # Colab trains on a GPU, the student's laptop has none. torch records each tensor's device in the file;
    # make it write "cuda:0", as a GPU-trained model's file says, without needing a GPU here.
    model = build_model(TINY)
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    save_checkpoint(model, tmp_path / "gpu")
    monkeypatch.undo()
    if not torch.cuda.is_available():  # the file really asks for a GPU: a plain torch.load refuses it here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "gpu.pt", weights_only=True)
    loaded = load_checkpoint(tmp_path / "gpu")
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_save_with_unserialisable_extra_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(build_model(TINY), tmp_path / "m", extra={"when": object()})
    assert list(tmp_path.iterdir()) == []


def test_missing_checkpoint_says_which_file_and_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.json.*save_checkpoint"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(build_model(TINY), tmp_path / "m")
    (tmp_path / "m.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"m\.pt"):
        load_checkpoint(tmp_path / "m")


def test_latent_size_mismatch_names_both_sizes(tmp_path):
    save_checkpoint(build_model(ModelConfig(latent_size=8, widths=(4, 8, 8, 8))), tmp_path / "m")
    meta_path = tmp_path / "m.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["latent_size"] = 12
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"latent_size=12.*latent_size=8"):
        load_checkpoint(tmp_path / "m")


def test_weights_without_the_decoders_first_layer_are_refused_with_the_reason(tmp_path):
    save_checkpoint(build_model(ModelConfig(latent_size=8, widths=(4, 8, 8, 8))), tmp_path / "m")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    del state["decoder.fc.weight"]  # the layer the latent size is read from
    torch.save(state, tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"(?s)do not fit.*decoder\.fc\.weight"):
        load_checkpoint(tmp_path / "m")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    save_checkpoint(build_model(ModelConfig(latent_size=8, widths=(4, 8, 8, 8))), tmp_path / "m")
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["config"]["widths"] = [4, 8, 8, 16]
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not fit"):
        load_checkpoint(tmp_path / "m")


def test_a_json_that_is_not_ours_is_refused(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"latent_size": 20}))
    torch.save({}, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="not a galaxy_autoencoders checkpoint"):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "m.json").write_text(json.dumps({"format": CHECKPOINT_FORMAT}))  # ours in name, but no config
    with pytest.raises(ValueError, match='and a "config"'):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "m.json").write_text(json.dumps([CHECKPOINT_FORMAT]))  # JSON, but not an object
    with pytest.raises(ValueError, match="not a galaxy_autoencoders checkpoint"):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(tmp_path / "m")


class _Payload:
    """Unpickling this would create a file: what a malicious checkpoint could do with any command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_payload_is_refused_without_running(tmp_path):
    model = build_model(TINY)
    save_checkpoint(model, tmp_path / "m")
    marker = tmp_path / "pwned"
    state = dict(model.state_dict())
    state["payload"] = _Payload(marker)
    torch.save(state, tmp_path / "m.pt")  # the tampered weights, next to the genuine JSON
    with pytest.raises(ValueError, match="Refused to load"):
        load_checkpoint(tmp_path / "m")
    assert not marker.exists()


def test_a_pickle_payload_is_refused_even_where_torch_would_unpickle_by_default(tmp_path, monkeypatch):
    # torch.load unpickles anything by default before torch 2.6 (the package allows torch >= 2.2); this variable
    # brings that default back for every call that does not say weights_only itself.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    test_pickle_payload_is_refused_without_running(tmp_path)


def test_only_a_model_built_from_a_config_can_be_saved(tmp_path):
    with pytest.raises(TypeError, match="built from a ModelConfig, got Linear"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "m")
    assert not list(tmp_path.iterdir())  # nothing written


def test_garbage_weights_file_is_reported(tmp_path):
    save_checkpoint(build_model(TINY), tmp_path / "m")
    (tmp_path / "m.pt").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"m\.pt"):
        load_checkpoint(tmp_path / "m")
    torch.save({"decoder.fc.weight": torch.zeros(2, 5), "epochs": 3}, tmp_path / "m.pt")  # a dict, not all tensors
    with pytest.raises(ValueError, match=r"m\.pt does not hold a state_dict"):
        load_checkpoint(tmp_path / "m")
