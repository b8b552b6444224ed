"""`galaxy-ae export-web`: the browser explorer's ONNX decoders draw what torch draws, its codes are the
package's own, and a model it cannot export is refused before anything is written.

The page that runs these files is tested in a real browser by tests/test_explorer_page.py."""

import hashlib
import json
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from galaxy_autoencoders import pretrained, web
from galaxy_autoencoders.cli import main
from galaxy_autoencoders.data import load_galaxies
from galaxy_autoencoders.inference import decode, encode_all
from galaxy_autoencoders.latent import latent_stats
from galaxy_autoencoders.models import ModelConfig, build_model, save_checkpoint

pytest.importorskip("galsim")


@pytest.fixture(scope="module")
def galaxies():
    return load_galaxies("synthetic", n=96, seed=5, progress=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, galaxies):
    """The pretrained ELBO-VAE and MMD-VAE exported once, with the checkpoints' hashes before and after."""
    folder = tmp_path_factory.mktemp("explorer")
    digest = {n: hashlib.sha256((pretrained.WEIGHTS / f"{n}.pt").read_bytes()).hexdigest() for n in ("elbo", "mmd")}
    written = web.export_web(folder, galaxies=galaxies, sliders=6)
    after = {n: hashlib.sha256((pretrained.WEIGHTS / f"{n}.pt").read_bytes()).hexdigest() for n in ("elbo", "mmd")}
    return folder, written, digest, after


def _onnx_decode(path, codes: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"z": code[None].numpy()})[0] for code in codes])


def test_the_onnx_decoders_draw_what_torch_draws_and_the_checkpoints_are_untouched(exported):
    folder, written, before, after = exported
    assert sorted(p.name for p in written) == ["elbo.onnx", "explorer.json", "mmd.onnx"]
    assert before == after
    codes = torch.randn(6, 20, generator=torch.Generator().manual_seed(11)) * 2
    for name in ("elbo", "mmd"):
        expected = decode(pretrained.load(name), codes).numpy()  # (6, 3, 69, 69)
        got = _onnx_decode(folder / f"{name}.onnx", codes)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_weights_are_stored_as_the_checkpoints_float16_numbers(exported):
    folder = exported[0]
    model = onnx.load(folder / "elbo.onnx")
    kinds = {init.data_type for init in model.graph.initializer if init.dims and np.prod(init.dims) > 100}
    assert kinds == {onnx.TensorProto.FLOAT16}
    decoder_weights = sum(p.numel() for p in pretrained.load("elbo").decoder.parameters())
    assert (folder / "elbo.onnx").stat().st_size < 2.2 * decoder_weights  # float32 would need 4 bytes each


def test_the_page_data_are_the_packages_stats_codes_and_strip(exported, galaxies):
    folder = exported[0]
    page = json.loads((folder / "explorer.json").read_text())
    assert page["format"] == web.FORMAT and page["sliders"] == 6
    assert page["galaxies"] == {"name": "synthetic", "count": len(galaxies)}
    strip = [item["index"] for item in page["strip"]]
    labels = galaxies.labels[strip]
    assert list(labels) == sorted(set(galaxies.labels))  # the first galaxy of each class, in class order
    assert all(strip[k] == int(np.flatnonzero(galaxies.labels == c)[0]) for k, c in enumerate(labels))
    assert all(item["png"].startswith("data:image/png;base64,") for item in page["strip"])
    for described in page["models"]:
        model = pretrained.load(described["key"])
        stats = latent_stats(model, galaxies.images)
        assert (
            described["source"] == f"pretrained:{described['key']}" and described["file"] == f"{described['key']}.onnx"
        )
        assert described["order"] == stats.order.tolist()
        np.testing.assert_allclose(described["std"], stats.std.numpy(), rtol=1e-6)
        np.testing.assert_allclose(described["mean"], stats.mean.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(described["strip_codes"], encode_all(model, galaxies.images[strip]), atol=1e-6)
    assert [m["label"] for m in page["models"]] == ["ELBO-VAE", "MMD-VAE"]


def test_an_autoencoder_is_refused_and_nothing_is_written(tmp_path, galaxies):
    out = tmp_path / "explorer"
    with pytest.raises(ValueError, match="pretrained:ae is not a VAE but an AutoEncoder"):
        web.export_web(out, {"elbo": "pretrained:elbo", "ae": "pretrained:ae"}, galaxies=galaxies)
    assert not out.exists()


def test_a_decoder_torch_cannot_export_is_refused_by_name(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise torch.onnx.errors.UnsupportedOperatorError("aten::mystery", 20, "not supported")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(RuntimeError, match="could not export the decoder of my_vae.*mystery"):
        web.export_decoder(pretrained.load("mmd"), tmp_path / "mmd.onnx", name="my_vae")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_second_export_leaves_the_folder_as_it_was(tmp_path, monkeypatch, galaxies):
    folder = tmp_path / "explorer"
    folder.mkdir()
    (folder / "elbo.onnx").write_bytes(b"the last export's")
    calls, export = [], torch.onnx.export

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("an operator it has no translation for")
        return export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", second_fails)
    with pytest.raises(RuntimeError, match="could not export the decoder of pretrained:mmd"):
        web.export_web(folder, galaxies=galaxies)
    assert sorted(p.name for p in folder.iterdir()) == ["elbo.onnx"]
    assert (folder / "elbo.onnx").read_bytes() == b"the last export's"


def test_without_the_web_extra_it_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    with pytest.raises(ImportError, match=r"needs onnxscript: pip install -e '\.\[web\]'"):
        web.decoder_onnx(pretrained.load("elbo"))


def test_a_file_that_draws_other_pictures_is_refused(tmp_path, monkeypatch):
    real = web.decode
    monkeypatch.setattr(web, "decode", lambda model, z: real(model, z) + 0.01)  # torch and the file now disagree
    with pytest.raises(RuntimeError, match="draws other pictures than torch.*0.01"):
        web.export_decoder(pretrained.load("elbo"), tmp_path / "elbo.onnx", name="elbo")
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_of_your_own_from_the_command_line(tmp_path, capsys):
    torch.manual_seed(0)
    save_checkpoint(build_model(ModelConfig(latent_size=4, widths=(8, 16))), tmp_path / "runs" / "mine")
    data = tmp_path / "few.h5"
    assert main(["data", "synthetic", "--n", "24", "--seed", "1", "--out", str(data)]) == 0
    out = tmp_path / "site"
    args = ["export-web", str(out), "--elbo", str(tmp_path / "runs" / "mine"), "--data", str(data), "--sliders", "9"]
    assert main(args) == 0
    assert "Wrote elbo.onnx, mmd.onnx, explorer.json" in capsys.readouterr().out
    page = json.loads((out / "explorer.json").read_text())
    mine, mmd = page["models"]
    assert mine["source"] == "mine" and mine["latent_size"] == 4 and mmd["latent_size"] == 20
    assert page["sliders"] == 4  # no more sliders than the smaller model has dimensions
    assert str(tmp_path) not in (out / "explorer.json").read_text()  # no machine path in what the site serves


def test_command_line_refusals_are_one_line_errors(tmp_path, capsys):
    assert main(["export-web", str(tmp_path / "x"), "--mmd", "pretrained:ae"]) == 1
    assert "not a VAE" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["export-web", str(tmp_path / "file")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["export-web", str(tmp_path / "y"), "--elbo", str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err
    assert main(["export-web", str(tmp_path / "z"), "--n", "10"]) == 1
    assert "--n takes a subset of --data's galaxies" in capsys.readouterr().err
