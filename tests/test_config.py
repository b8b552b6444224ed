"""The profile switch and the data folder: read in one place, with clear errors."""

import pytest
import torch

from galaxy_autoencoders import config


def test_profile_comes_from_the_environment_and_defaults_to_quick(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    assert config.get_profile().name == "quick"
    assert config.get_profile().dataset == "synthetic"  # offline by default
    monkeypatch.setenv(config.PROFILE_ENV, "full")
    assert config.get_profile().dataset == "galaxy10_sdss" and config.get_profile().epochs == 50
    assert config.get_profile("quick").name == "quick"  # an explicit name wins


def test_unknown_profile_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "fast")
    try:
        config.get_profile()
    except ValueError as err:
        assert "$GALAXY_AE_PROFILE" in str(err) and "'full'" in str(err) and "'quick'" in str(err)
    else:
        raise AssertionError("an unknown profile was accepted")


def test_apply_profile_seeds_and_fixes_threads(monkeypatch):
    monkeypatch.delenv(config.THREADS_ENV, raising=False)
    before = torch.get_num_threads()
    try:
        config.apply_profile(config.get_profile("quick"))
        a = torch.rand(3)
        config.apply_profile(config.get_profile("quick"))
        assert torch.equal(a, torch.rand(3)) and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_thread_count_can_be_set_but_is_not_printed(monkeypatch):
    monkeypatch.setenv(config.THREADS_ENV, "1")
    quick = config.get_profile("quick")
    assert quick.num_threads == 1 and config.get_profile("full").num_threads == 1
    monkeypatch.delenv(config.THREADS_ENV)
    assert config.get_profile("quick").num_threads == 2
    # a notebook prints its profile: the same text with 1 or 2 threads (benchmarks/notebook_stability.py)
    assert repr(quick) == repr(config.get_profile("quick")) and "threads" not in repr(quick)
    monkeypatch.setenv(config.THREADS_ENV, "two")
    with pytest.raises(ValueError, match=r"\$GALAXY_AE_THREADS is 'two'; give a positive whole number"):
        config.get_profile("quick")


def test_data_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv(config.DATA_ENV, str(tmp_path))
    assert config.data_dir() == tmp_path
    monkeypatch.delenv(config.DATA_ENV)
    assert config.data_dir().name == "data"  # this source checkout's data/ folder
