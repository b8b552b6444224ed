"""The device-resident DataLoaders: splits, batches, the 8 symmetries, and fastai's verbs."""

import numpy as np
import pytest
import torch

from galaxy_autoencoders.dataloaders import apply_dihedral, dihedral_index, galaxy_dls


def _indexed_images(n: int) -> np.ndarray:
    """Each image is constant, equal to its own index (mod 256), so a batch tells which galaxies it holds."""
    return np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None, None], (n, 69, 69, 3)).copy()


def test_dihedral_ops_are_the_eight_symmetries_of_the_square():
    img = torch.arange(2 * 69 * 69).view(1, 2, 69, 69).repeat(8, 1, 1, 1)
    out = apply_dihedral(img, torch.arange(8), dihedral_index(69, 69))
    expected = [torch.rot90(img[0], k, dims=(1, 2)) for k in range(4)]
    expected += [torch.rot90(img[0].flip(-1), k, dims=(1, 2)) for k in range(4)]
    for got, want in zip(out, expected, strict=True):
        assert torch.equal(got, want)
    assert len({o.numpy().tobytes() for o in out}) == 8


def test_split_is_seeded_disjoint_and_complete():
    images = _indexed_images(200)
    a = galaxy_dls(images, valid_pct=0.2, bs=16, seed=1, augment=False)
    b = galaxy_dls(images, valid_pct=0.2, bs=16, seed=1, augment=False)
    c = galaxy_dls(images, valid_pct=0.2, bs=16, seed=2, augment=False)
    train, valid = set(a.train.idxs.tolist()), set(a.valid.idxs.tolist())
    assert len(valid) == 40 and not train & valid and train | valid == set(range(200))
    assert torch.equal(a.valid.idxs, b.valid.idxs) and not torch.equal(a.valid.idxs, c.valid.idxs)


def test_batches_hold_the_right_galaxies_and_labels_once_per_epoch():
    images, labels = _indexed_images(250), np.arange(250) % 10
    dls = galaxy_dls(images, labels, valid_pct=0.2, bs=32, seed=0)
    seen = []
    for x, target, y in dls.train:
        assert x.shape[1:] == (3, 69, 69) and x.dtype == torch.float32
        assert torch.equal(x, target) and 0 <= x.min() and x.max() <= 1
        ids = (x[:, 0, 0, 0] * 255).round().long()
        assert torch.equal(y, ids % 10)  # labels travel with their galaxies
        seen += ids.tolist()
    assert len(seen) == len(set(seen)) == len(dls.train) * 32  # each galaxy at most once, full batches
    valid_ids = torch.cat([(x[:, 0, 0, 0] * 255).round().long() for x, _, _ in dls.valid])
    assert sorted(valid_ids.tolist()) == sorted(dls.valid.idxs.tolist())


def test_training_batches_are_augmented_and_validation_ones_are_not():
    images = np.random.default_rng(0).integers(0, 255, (64, 69, 69, 3), dtype=np.uint8)
    dls = galaxy_dls(images, valid_pct=0.25, bs=48, seed=0)
    raw = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).float() / 255
    x, _, _ = dls.train.one_batch()
    order = dls.train.idxs[torch.randperm(48, generator=torch.Generator().manual_seed(0))]
    # Every augmented image is one of the 8 symmetries of its original; over a batch several ops occur.
    ops_seen = set()
    index = dihedral_index(69, 69)
    for img, i in zip(x, order, strict=True):
        variants = apply_dihedral(raw[i].unsqueeze(0).repeat(8, 1, 1, 1), torch.arange(8), index)
        matches = [k for k in range(8) if torch.equal(variants[k], img)]
        assert matches, "an augmented galaxy is not a rotation/flip of its original"
        ops_seen.add(matches[0])
    assert len(ops_seen) >= 5
    xv, _, _ = dls.valid.one_batch()
    assert torch.equal(xv, raw[dls.valid.idxs[: len(xv)]])


def test_fastai_verbs_and_settings():
    dls = galaxy_dls(_indexed_images(100), np.arange(100) % 10, class_names=tuple("abcdefghij"), bs=8)
    assert dls.n_inp == 1 and dls.device.type == "cpu"
    fig = dls.show_batch(max_n=6, ncols=3)
    (ax,) = fig.axes  # one image of tiles (display.grid_figure's way), the titles on white bands above the rows
    picture, titles = ax.get_images()[0].get_array(), ax.texts
    assert len(titles) == 6
    for title in titles:  # each title names the class of the galaxy below it (its pixel value is its index)
        x, y = title.get_position()
        assert title.get_text() == "abcdefghij"[int(picture[int(y) + 3, int(x), 0]) % 10]
    new = dls.valid.new(shuffle=True, drop_last=True)
    assert new.shuffle and new.images is dls.valid.images  # no copy of the data
    with pytest.raises(TypeError, match="unknown setting"):
        dls.valid.new(bogus=1)


def test_bad_inputs_are_refused_with_a_fix():
    floats = np.full((10, 69, 69, 3), 0.5, dtype=np.float32)
    with pytest.raises(ValueError, match=r"galaxy_dls\(images\).*float32.*\* 255"):
        galaxy_dls(floats)
    floats[7, 3, 3] = np.nan  # named as such: converting first would silently make the NaN a black pixel
    with pytest.raises(ValueError, match=r"galaxy_dls\(images\): 1 of 10 images contain NaN or inf .*image 7"):
        galaxy_dls(floats)
    with pytest.raises(ValueError, match=r"galaxy_dls\(images\): channels-first"):
        galaxy_dls(np.zeros((10, 3, 69, 69), dtype=np.uint8))
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        galaxy_dls(_indexed_images(10), labels=np.zeros(9))
    with pytest.raises(ValueError, match="outside the class indices"):
        galaxy_dls(_indexed_images(10), labels=np.full(10, 12))
    with pytest.raises(ValueError, match="valid_pct"):
        galaxy_dls(_indexed_images(10), valid_pct=0.0)
