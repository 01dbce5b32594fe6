"""Data-parallel training: 2 torchrun processes (gloo) give the single-process result."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import ase.io
import pytest
import torch
from cuni_data import ELEMENTS, emt_frames

from mdmlkit.descriptors import generate_set
from mdmlkit.io.n2p2 import read_input_nn
from mdmlkit.potential import HDNNP
from mdmlkit.potential.n2p2_model import hdnnp_settings
from mdmlkit.potential.training.ddp import main_train


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    ase.io.write(d / "train.extxyz", emt_frames(15, seed=0))
    ase.io.write(d / "val.extxyz", emt_frames(5, seed=1))
    sfs = generate_set(ELEMENTS, rc=4.5, n_radial=4, n_angular=1)   # radial and angular terms
    (d / "input.nn").write_text("\n".join(sfs.to_input_nn_lines(header=True)) + "\n")
    return d


def common_args(d):
    # batch 4 over 15 structures: shards of 2+2 and a last batch of 3 (2+1)
    return ["--train", str(d / "train.extxyz"), "--val", str(d / "val.extxyz"),
            "--input-nn", str(d / "input.nn"), "--hidden", "6", "6", "--epochs", "3",
            "--batch-size", "4", "--lr", "5e-3", "--lr-schedule", "exponential",
            "--force-weight", "0.3", "--seed", "3", "--device", "cpu", "--threads", "1", "--quiet"]


def test_two_processes_equal_one_process(files, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mdmlkit.potential.training.ddp", *common_args(files), "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    assert main_train(common_args(files) + ["--out", str(tmp_path / "single")]) == 0

    two = HDNNP.load(tmp_path / "ddp" / "model.pt")
    one = HDNNP.load(tmp_path / "single" / "model.pt")
    for (k, a), b in zip(one.state_dict().items(), two.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=k)

    m2 = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    m1 = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert m2["world_size"] == 2 and m1["world_size"] == 1
    assert m2["rank_weight_max_abs_diff"] == 0.0
    h2 = json.loads((tmp_path / "ddp" / "history.json").read_text())
    h1 = json.loads((tmp_path / "single" / "history.json").read_text())
    assert len(h1) == len(h2) == 3
    for a, b in zip(h1, h2):
        for key in ("train_loss", "val_loss", "train_force_rmse_meV_A", "val_energy_rmse_meV_atom", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-9), key
    assert h1[-1]["train_loss"] < h1[0]["train_loss"]
    assert (tmp_path / "ddp" / "checkpoints" / "checkpoint.pt").exists()
    # only rank 0 wrote: no stray temporary files
    assert not [p for p in (tmp_path / "ddp").rglob("*.part*")]


def test_architecture_from_input_nn_and_n2p2_export(files, tmp_path):
    nn = tmp_path / "input.nn"
    nn.write_text((files / "input.nn").read_text() + "\n".join([
        "scale_symmetry_functions", "center_symmetry_functions", "scale_min_short -1.0",
        "scale_max_short 1.0", "global_hidden_layers_short 2", "global_nodes_short 5 3",
        "global_activation_short p t l"]) + "\n")
    kw = hdnnp_settings(read_input_nn(nn))
    assert kw["hidden"] == {"Cu": [5, 3], "Ni": [5, 3]} and kw["scale_min"] == -1.0
    args = common_args(files)
    args[args.index("--input-nn") + 1] = str(nn)
    i = args.index("--hidden")
    del args[i:i + 3]
    args[args.index("--epochs") + 1] = "1"
    assert main_train(args + ["--out", str(tmp_path / "out"), "--n2p2"]) == 0
    model = HDNNP.load(tmp_path / "out" / "model.pt")
    assert model.layer_sizes("Cu") == [model.n_features["Cu"], 5, 3, 1]
    assert model.activations("Ni")[0] == "softplus"
    from mdmlkit.potential import load_n2p2_model

    back = load_n2p2_model(tmp_path / "out" / "n2p2")
    frames = emt_frames(2, seed=7)
    from mdmlkit.descriptors import AtomsBatch

    e1 = model(AtomsBatch.from_atoms(frames, model.elements, model.cutoff))
    e2 = back(AtomsBatch.from_atoms(frames, back.elements, back.cutoff))
    torch.testing.assert_close(e1, e2, rtol=1e-9, atol=1e-9)
