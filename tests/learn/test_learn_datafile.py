"""The states of a data file and the refusals that keep a user's files intact (issue 12, items 2, 3, 4, 10)."""

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from physinv import cli
from physinv.core.errors import InvalidParameterError
from physinv.core.locking import ExclusiveLock, LockedError, lock_path
from physinv.learn import data, datafile

NAME = "poisson-2d-kappa"
SMALL = {"cells": 6}


def _small(path, seed=0, n=4, **kw):
    return data.generate(NAME, n, path, seed=seed, chunk=2, params=SMALL, progress=False, **kw)


def test_overwrite_never_replaces_a_file_that_is_not_a_data_set(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for overwrite in (False, True):
        with pytest.raises(data.DataFileError, match="is not a physinv data set.*never replaces"):
            _small(notes, overwrite=overwrite)
        assert notes.read_text() == "my notes\n"
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as h5:
        h5["x"] = np.arange(3)
    with pytest.raises(data.DataFileError, match="is not a physinv data set"):
        _small(foreign, overwrite=True)
    with h5py.File(foreign, "r") as h5:
        assert h5["x"][()].tolist() == [0, 1, 2]
    with pytest.raises(data.DataFileError, match="is a folder"):
        _small(tmp_path, overwrite=True)


def test_overwrite_refuses_a_file_another_process_is_writing(tmp_path):
    path = _small(tmp_path / "d.h5", seed=1)
    before = path.read_bytes()
    with ExclusiveLock(path, what="generating into"):  # what a live run holds
        with pytest.raises(LockedError, match=rf"{path.name} is locked: pid \d+ \(generating into it\) since "):
            _small(path, seed=2, overwrite=True)
    assert path.read_bytes() == before
    assert not lock_path(path).exists() and not datafile.partial_path(path).exists()
    _small(path, seed=2, overwrite=True)  # free again: replaced
    assert data.read_metadata(path)["seed"] == 2


def test_the_old_file_stays_until_the_replacement_is_complete(tmp_path, monkeypatch):
    path = _small(tmp_path / "d.h5", seed=1)
    before = path.read_bytes()

    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "_simulate_range", fail)
    with pytest.raises(KeyboardInterrupt):
        _small(path, seed=2, overwrite=True)
    assert path.read_bytes() == before and data.read_metadata(path)["seed"] == 1


def _flip_chunk(path):
    with h5py.File(path, "r", **datafile._H5) as h5:
        offset = h5["u"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 40] ^= 0xFF
    raw[offset + 41] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_flipped_value_in_a_field_is_an_error_not_a_wrong_value(tmp_path, unseal):
    path = _small(tmp_path / "d.h5", seed=3)
    _flip_chunk(path)
    with pytest.raises(data.DataFileError, match=rf"{path} is damaged: its bytes do not match the sha256 of its seal"):
        data.load(path)
    assert cli.main(["data", "info", str(path)]) == 1
    # a partial file has no seal yet: the chunk's fletcher32 checksum finds the flip
    partial = unseal(_small(tmp_path / "p.h5", seed=3))
    assert data.read_metadata(tmp_path / "p.h5")["chunks_done"] == 2
    _flip_chunk(partial)
    with pytest.raises(data.DataFileError, match=rf"{partial} is damaged: reading its fields failed the checksum"):
        datafile.verify(partial, sealed=False)


def test_changed_attributes_fail_the_seal_and_their_digest(tmp_path, unseal):
    path = _small(tmp_path / "d.h5", seed=3)
    with h5py.File(path, "r+", **datafile._H5) as h5:
        h5.attrs["seed"] = 4  # as a flipped bit in the attribute would
    with pytest.raises(data.DataFileError, match="do not match the sha256 of its seal"):
        data.load(path)
    partial = unseal(_small(tmp_path / "p.h5", seed=3))
    with h5py.File(partial, "r+", **datafile._H5) as h5:
        h5.attrs["seed"] = 4
    with pytest.raises(data.DataFileError, match="do not match their sha256 digest"):
        data.read_metadata(tmp_path / "p.h5")


def test_a_truncated_or_unsealed_complete_file_is_damaged(tmp_path):
    path = _small(tmp_path / "d.h5")
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(data.DataFileError, match="truncated or appended to"):
        data.load(path)
    unsealed = bytearray(raw)
    unsealed[:datafile.USERBLOCK] = bytes(datafile.USERBLOCK)
    path.write_bytes(bytes(unsealed))
    with pytest.raises(data.DataFileError, match="without its seal"):
        data.load(path)


def test_a_partial_file_without_its_chunk_record_is_started_over(tmp_path, unseal):
    """Attributes written, chunk record missing (a kill between the two, in the old format)."""
    path = tmp_path / "d.h5"
    partial = unseal(_small(path))
    assert data.read_metadata(path)["chunks_done"] == 2
    with h5py.File(partial, "r+", **datafile._H5) as h5:
        del h5[datafile.DONE]
    with pytest.raises(data.DataFileError, match="chunk record '_chunk_sha256' is missing"):
        data.read_metadata(path)
    with pytest.warns(UserWarning, match="chunk record.*starting it over"):
        _small(path)
    assert len(data.load(path)) == 4 and not partial.exists()


def test_a_run_stopped_between_sealing_and_renaming_is_finished_by_the_rerun(tmp_path, monkeypatch):
    path = tmp_path / "d.h5"
    replace = os.replace

    def killed_before_the_rename(src, dst):
        if Path(src) == datafile.partial_path(path):
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        _small(path)
    monkeypatch.undo()
    assert not path.exists() and datafile.check_seal(datafile.partial_path(path))
    with pytest.raises(data.IncompleteDataError):
        data.load(path)
    monkeypatch.setattr(data, "_simulate_range", lambda *a: pytest.fail("nothing is left to compute"))
    _small(path)
    assert data.read_metadata(path)["complete"] and not datafile.partial_path(path).exists()


def test_a_damaged_partial_file_is_started_over(tmp_path):
    path = tmp_path / "d.h5"
    partial = datafile.partial_path(path)
    partial.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # killed while the skeleton was written
    with pytest.warns(UserWarning, match="unfinished generation, starting it over"):
        _small(path, seed=5)
    straight = _small(tmp_path / "s.h5", seed=5)
    np.testing.assert_array_equal(data.load(path)["u"], data.load(straight)["u"])
    assert not partial.exists()


def test_only_the_partial_file_of_an_interrupted_run_is_an_incomplete_data_set(tmp_path, monkeypatch):
    path = tmp_path / "d.h5"
    calls = [0]
    simulate = data._simulate_range

    def interrupt(*args):
        calls[0] += 1
        if calls[0] == 3:  # the probe of sample 0, chunk 0, then interrupted
            raise KeyboardInterrupt
        return simulate(*args)

    monkeypatch.setattr(data, "_simulate_range", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _small(path, n=6)
    assert not path.exists() and datafile.partial_path(path).exists()
    meta = data.read_metadata(path)
    assert (meta["chunks_done"], meta["chunks_total"], meta["complete"]) == (1, 3, False)
    with pytest.raises(data.IncompleteDataError, match="1 of 3 chunks; its generation was interrupted.*--param"):
        data.load(path)
    state, _ = datafile.describe(path)
    assert state.startswith("incomplete: 1 of 3 chunks") and "rerun the same command" in state


def test_parameters_are_parsed_to_their_declared_types(tmp_path, capsys):
    gen = data.get_dataset(NAME)
    assert gen.resolve_params({"cells": "8", "amplitude": 2})["cells"] == 8
    assert isinstance(gen.resolve_params({"amplitude": 2})["amplitude"], float)
    bad = {"cells": [2.7, True, "eight", 1], "dtype": ["int8", 1], "amplitude": [float("nan"), -1.0, "x"]}
    for key, values in bad.items():
        for value in values:
            with pytest.raises(InvalidParameterError, match=f"parameter {key!r}"):
                gen.resolve_params({key: value})
    out = tmp_path / "p.h5"
    for text in ("cells=2.7", "dtype=int8"):
        args = ["data", "generate", NAME, "--n", "2", "--out", str(out), "--param", text, "--quiet"]
        assert cli.main(args) == 2
        assert "parameter" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(InvalidParameterError, match="seed must be an integer >= 0"):
        data.generate(NAME, 2, out, seed=-1, params=SMALL, progress=False)
    with pytest.raises(InvalidParameterError, match="n must be an integer >= 1; got 2.5"):
        data.generate(NAME, 2.5, out, params=SMALL, progress=False)


def test_data_info_prints_the_settings_and_verifies_the_checksums(tmp_path, capsys):
    path = _small(tmp_path / "d.h5", seed=9)
    assert cli.main(["data", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: complete" in out and "seed       9" in out and json.dumps(6) in out
    assert "4 in chunks of 2 (2 of 2 chunks done)" in out and "checksums  every attribute and chunk verified" in out
    assert cli.main(["data", "info", str(tmp_path / "none.h5")]) == 1
    assert "no data file" in capsys.readouterr().err
