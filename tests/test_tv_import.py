"""The torchvision import workaround: torchvision imports and the pieces we use work."""
import torch

from ffn_core import _tv


def test_torchvision_imports_and_resnet_works():
    tv = _tv.torchvision
    model = tv.models.resnet18(num_classes=3).eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_exactly_one_mode_active():
    # Either the real extension loaded (then the fallback must stay off) or the fallback is active.
    assert _tv.EXTENSION_LOADED != _tv.FALLBACK_ACTIVE or (_tv.EXTENSION_LOADED and not _tv.FALLBACK_ACTIVE)
    if _tv.FALLBACK_ACTIVE:
        assert _tv._LIBRARY is not None  # kept alive, else the ops would be unregistered


def test_nms_op_available_and_correct():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    keep = torch.ops.torchvision.nms(boxes, scores, 0.5)
    assert keep.tolist() == [0, 2]


def test_transforms_v2_on_video():
    from ffn_core._tv import torchvision as tv
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    video = tv_tensors.Video(torch.randint(0, 255, (4, 3, 40, 48), dtype=torch.uint8))
    out = v2.CenterCrop(32)(video)
    assert out.shape == (4, 3, 32, 32) and isinstance(out, tv_tensors.Video)
    assert tv.__version__.startswith("0.28")


def test_second_prepare_is_noop():
    before = _tv._LIBRARY
    _tv._prepare()  # must not define the ops twice (that would raise)
    assert _tv._LIBRARY is before or _tv.EXTENSION_LOADED
