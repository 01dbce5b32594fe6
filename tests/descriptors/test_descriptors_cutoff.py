"""Cutoff functions: n2p2 definitions, limits, continuity, derivatives."""
from __future__ import annotations

import math

import pytest
import torch

from mdmlkit.descriptors.cutoff import CUTOFF_TYPES, NO_ALPHA_TYPES, cutoff_function

RC = 5.0
SMOOTH = [t for t in CUTOFF_TYPES if t != 0]


def fc(r, t, alpha):
    return cutoff_function(torch.as_tensor(r, dtype=torch.float64), RC, t, alpha)


@pytest.mark.parametrize("t", sorted(CUTOFF_TYPES))
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_limits(t, alpha):
    r = torch.tensor([RC, RC + 1e-9, RC + 2.0], dtype=torch.float64)
    assert torch.all(fc(r, t, alpha) == 0.0)
    below = torch.linspace(0.0, alpha * RC, 5, dtype=torch.float64)
    if t == 2:       # tanhu is not normalised: tanh^3(1 - r/rc)
        assert fc(0.0, t, alpha).item() == pytest.approx(math.tanh(1.0) ** 3, abs=1e-14)
    elif t == 3:     # tanh: normalised at r = 0 only (alpha unused)
        assert fc(0.0, t, alpha).item() == pytest.approx(1.0, abs=1e-14)
    else:            # 1 on [0, alpha rc]
        assert torch.allclose(fc(below, t, alpha), torch.ones(5, dtype=torch.float64),
                              atol=1e-15)


@pytest.mark.parametrize("t,x,expected", [
    (1, 0.25, 0.5 * (math.cos(math.pi * 0.25) + 1)),
    (4, 0.5, math.exp(1 - 1 / (1 - 0.25))),
    (5, 0.4, (2 * 0.4 - 3) * 0.4 ** 2 + 1),
    (6, 0.4, ((15 - 6 * 0.4) * 0.4 - 10) * 0.4 ** 3 + 1),
    (7, 0.4, (0.4 * (0.4 * (20 * 0.4 - 70) + 84) - 35) * 0.4 ** 4 + 1),
    (8, 0.4, (0.4 * (0.4 * ((315 - 70 * 0.4) * 0.4 - 540) + 420) - 126) * 0.4 ** 5 + 1),
])
def test_shapes_in_x(t, x, expected):
    alpha = 0.2
    r = alpha * RC + x * (RC - alpha * RC)
    assert fc(r, t, alpha).item() == pytest.approx(expected, rel=1e-13)


def test_tanh_definitions():
    r = 2.0
    tu = math.tanh(1 - r / RC) ** 3
    assert fc(r, 2, 0.5).item() == pytest.approx(tu, rel=1e-13)   # alpha ignored
    assert fc(r, 3, 0.0).item() == pytest.approx(tu / math.tanh(1.0) ** 3, rel=1e-13)


@pytest.mark.parametrize("t", SMOOTH)
@pytest.mark.parametrize("alpha", [0.0, 0.25])
def test_continuity_and_derivative(t, alpha):
    r = torch.linspace(0.3, RC + 0.5, 2001, dtype=torch.float64).requires_grad_(True)
    f = cutoff_function(r, RC, t, alpha)
    (g,) = torch.autograd.grad(f.sum(), r)
    assert torch.isfinite(g).all()
    # continuity: no jumps bigger than slope * step
    step = (r[1] - r[0]).item()
    jumps = (f[1:] - f[:-1]).abs().detach()
    assert jumps.max() < 5 * g.abs().max() * step + 1e-12
    # autograd derivative vs central finite differences
    h = 1e-6
    rr = r.detach()
    fd = (cutoff_function(rr + h, RC, t, alpha) - cutoff_function(rr - h, RC, t, alpha)) / (2 * h)
    kink = (rr - alpha * RC).abs() < 2 * h
    kink |= (rr - RC).abs() < 2 * h
    assert torch.allclose(g[~kink], fd[~kink], atol=1e-7, rtol=1e-6)
    # smooth at rc: f and f' vanish there
    end = torch.tensor([RC - 1e-7], dtype=torch.float64, requires_grad=True)
    fe = cutoff_function(end, RC, t, alpha)
    (ge,) = torch.autograd.grad(fe.sum(), end)
    assert abs(fe.item()) < 1e-6 and abs(ge.item()) < 1e-4


def test_hard_cutoff_is_step():
    r = torch.tensor([0.0, 4.999, 5.0, 6.0], dtype=torch.float64)
    assert fc(r, 0, 0.0).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_bad_parameters():
    with pytest.raises(ValueError, match="unknown cutoff type"):
        fc(1.0, 9, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        fc(1.0, 6, 1.0)


def test_float32_and_broadcast():
    r = torch.linspace(0, 6, 7, dtype=torch.float32)[:, None]
    rc = torch.tensor([4.0, 5.0, 6.0], dtype=torch.float32)[None, :]
    out = cutoff_function(r, rc, 6, 0.1)
    assert out.shape == (7, 3) and out.dtype == torch.float32
    assert out[4, 0] == 0 and out[5, 1] == 0 and out[6, 2] == 0
    assert set(NO_ALPHA_TYPES) == {2, 3}
