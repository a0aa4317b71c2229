"""Datasets: the built-in shapes and sprites, and conversion of user data."""

import numpy as np
import pytest
import torch

from pyvae import data


def test_sprites_shapes_labels_and_determinism():
    train, test = data.load("sprites", n_train=300, n_test=50)
    assert train.shape == (1, 64, 64) and len(train) == 300 and len(test) == 50
    assert train.data.dtype == torch.uint8
    assert set(train.data.unique().tolist()) == {0, 1}
    assert train.targets.shape == (300, 5) and train.factor_names == data.SPRITE_FACTORS
    assert set(train.targets[:, 0].unique().tolist()) == {0.0, 1.0, 2.0}
    assert (train.targets[:, 1:].min() >= 0) and (train.targets[:, 3:].max() <= 1)
    again, _ = data.load("sprites", n_train=300, n_test=50)
    assert torch.equal(train.data, again.data)
    # Every image shows a shape, and bigger shapes cover more pixels.
    area = train.data.flatten(1).sum(1).float()
    assert area.min() > 0
    corr = np.corrcoef(area.numpy(), train.targets[:, 1].numpy())[0, 1]
    assert corr > 0.5
    x, y = train[0]
    assert x.shape == (1, 64, 64) and y.shape == (5,)


def test_shapes_are_upright_sprites_of_their_factors():
    train, test = data.load("shapes", n_train=300, n_test=50)
    assert train.shape == (1, 32, 32) and len(train) == 300 and len(test) == 50
    assert train.data.dtype == torch.uint8
    assert set(train.data.unique().tolist()) == {0, 1}
    assert train.targets.shape == (300, 4) and train.factor_names == data.SHAPE_FACTORS
    assert set(train.targets[:, 0].unique().tolist()) == {0.0, 1.0, 2.0}
    scale, pos = train.targets[:, 1], train.targets[:, 2:]
    assert scale.min() >= 0.5 and scale.max() <= 1 and pos.min() >= 0 and pos.max() <= 1
    again, _ = data.load("shapes", n_train=300, n_test=50)
    assert torch.equal(train.data, again.data)
    assert not torch.equal(train.data, data.load("shapes", n_train=300, n_test=50, seed=1)[0].data)
    assert torch.equal(train.data, data.render_shapes(train.targets))
    # Each is a sprite at orientation 0: the sprites' renderer with the angle column 0
    # draws the same shape, smaller and nearer the edges (sprites' radius and margin).
    factors = train.targets[:4]
    as_sprite = torch.cat([factors[:, :2], torch.zeros(4, 1), factors[:, 2:]], dim=1)
    upright = data.render_sprites(as_sprite, size=32)
    assert (upright.flatten(1).sum(1) < train.data[:4].flatten(1).sum(1)).all()
    # A square at scale s covers (2 * 0.8 * 0.3 * s * 32)^2 pixels; upright, nothing else.
    square = torch.tensor([[0.0, 1.0, 0.5, 0.5]])
    side = 2 * 0.8 * 0.3 * 32
    assert abs(int(data.render_shapes(square).sum()) - side**2) <= 2 * side + 1
    rows = data.render_shapes(square)[0, 0].any(1).nonzero().flatten()
    assert len(rows) == round(side) or len(rows) == round(side) + 1
    # The heart points down: its lower half holds fewer pixels than its upper half.
    heart = data.render_shapes(torch.tensor([[2.0, 1.0, 0.5, 0.5]]))[0, 0]
    assert heart[16:].sum() < heart[:16].sum()


def test_render_shapes_refuses_bad_factors():
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        data.render_shapes(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="0, 1 or 2"):
        data.render_shapes(torch.tensor([[1.5, 1.0, 0.5, 0.5]]))
    with pytest.raises(ValueError, match="size >= 8"):
        data.make_shapes(3, size=4)
    with pytest.raises(ValueError, match="binary already"):
        data.load("shapes", binarize="static")


def test_load_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="sprites"):
        data.load("mnits")


def test_as_tensor_conversions():
    a = np.random.rand(4, 3)
    t = data.as_tensor(a)
    assert t.dtype == torch.float32 and t.shape == (4, 3)
    assert data.as_tensor(np.zeros((2, 2), dtype=bool)).dtype == torch.uint8
    with pytest.raises(TypeError, match="NumPy"):
        data.as_tensor("not data")
    with pytest.raises(ValueError, match="empty"):
        data.as_tensor(torch.utils.data.TensorDataset(torch.zeros(0, 3)))
    items = torch.utils.data.TensorDataset(torch.arange(6.0).reshape(3, 2), torch.zeros(3))
    assert torch.equal(data.as_tensor(items), torch.arange(6.0).reshape(3, 2))


def test_targets_of_every_kind_of_data():
    x, y = torch.zeros(4, 2), torch.tensor([3, 1, 0, 2])
    assert data.targets(x) is None and data.targets(x.numpy()) is None
    assert data.targets(data.ArrayDataset(x)) is None
    for source in (
        (x, y),
        [x, y.numpy()],
        data.ArrayDataset(x, y),
        torch.utils.data.TensorDataset(x, y),
        torch.utils.data.Subset(torch.utils.data.TensorDataset(x, y), range(4)),
    ):
        assert data.targets(source).tolist() == y.tolist()
        assert torch.equal(data.source(source)[0], x)


def test_side_batches_follow_the_batches_of_x():
    x = torch.arange(10.0).unsqueeze(1)
    side = {"y": torch.arange(10) * 10}
    order = torch.randperm(10)
    xs = list(data.batches(x, None, 3, order=order))
    sides = list(data.side_batches(side, 3, order=order))
    assert len(xs) == len(sides) == 4
    for xb, sb in zip(xs, sides, strict=True):
        assert torch.equal(sb["y"], xb[:, 0].long() * 10)
    assert next(data.side_batches({}, 3)) == {}  # a VAE of x alone: no side information
