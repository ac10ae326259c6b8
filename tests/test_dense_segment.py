"""Dense encoder and segmentation models on the real Lite0 backbone and small real data."""

from __future__ import annotations

import torch

from transferkit.dense import DenseEncoder, encode_dataset


def test_encoder_gives_lite0_maps_at_strides_2_to_32(lite0):
    encoder = DenseEncoder(lite0)
    assert encoder.channels == [16, 24, 40, 112, 320]
    assert encoder.reductions == [2, 4, 8, 16, 32]
    images = encoder.normalize(torch.rand(2, 3, 128, 128))
    maps = encoder(images)
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 64, 64), (24, 32, 32), (40, 16, 16),
                                                  (112, 8, 8), (320, 4, 4)]
    expected = lite0.model.forward_intermediates(images, indices=5, intermediates_only=True)
    for got, want in zip(maps, expected):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_cached_trunk_plus_trained_top_equals_the_whole_encoder(lite0):
    encoder = DenseEncoder(lite0, train_blocks=2).eval()
    assert encoder.num_parameters(trainable_only=True) < encoder.num_parameters()
    before = {k: v.clone() for k, v in lite0.model.state_dict().items()}
    images = encoder.normalize(torch.rand(3, 3, 64, 64))
    cached = encode_dataset(encoder, images, batch_size=2, dtype=torch.float32)
    live = encoder(images)
    for got, want in zip(encoder.forward_cached(cached), live):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    encoder.train()
    assert not encoder.units[0].training and encoder.units[-1].training
    for p in encoder.trainable_parameters():  # its own copies: the backbone never changes
        p.data.add_(1.0)
    assert all(torch.equal(v, lite0.model.state_dict()[k]) for k, v in before.items())
