import torch

from hybridlib.augment import random_views


def _images():
    return torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_no_augmentation_is_the_identity():
    x = _images()
    y = random_views(x, torch.Generator().manual_seed(0), crop_scale=1.0, hflip=False, jitter=0.0)
    assert torch.allclose(x, y, atol=1e-5)


def test_views_are_deterministic_per_seed_and_differ_between_seeds():
    x = _images()
    a = random_views(x, torch.Generator().manual_seed(3))
    b = random_views(x, torch.Generator().manual_seed(3))
    c = random_views(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1


def test_each_image_gets_its_own_crop():
    x = _images()[:1].expand(8, -1, -1, -1).contiguous()  # the same image eight times
    v = random_views(x, torch.Generator().manual_seed(0), jitter=0.0)
    assert len({tuple(img.flatten().tolist()) for img in v}) == 8


def test_flip_only_mirrors():
    x = _images()
    y = random_views(x, torch.Generator().manual_seed(0), crop_scale=1.0, hflip=True, jitter=0.0)
    for xi, yi in zip(x, y):
        assert torch.allclose(yi, xi, atol=1e-5) or torch.allclose(yi, xi.flip(-1), atol=1e-5)
