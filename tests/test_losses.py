"""MFAL loss (paper Eq. 3-5): CE on the highest stream + lambda * KL(p_H.detach() || p_s)."""
import pytest
import torch
import torch.nn.functional as F

from ffn_core.losses import MFALoss, soft_cross_entropy

FRAME_SETS = [(4, 16), (4, 8, 16), (4, 8, 12, 16)]
B, C = 6, 5


def _logits(frames, seed=0, grad=True):
    g = torch.Generator().manual_seed(seed)
    return {t: torch.randn(B, C, generator=g).requires_grad_(grad) for t in frames}


def _manual_kl(z_high, z_low):
    p = F.softmax(z_high, 1)
    return (p * (F.log_softmax(z_high, 1) - F.log_softmax(z_low, 1))).sum(1).mean()


@pytest.mark.parametrize("frames", FRAME_SETS)
def test_kl_is_zero_for_equal_logits(frames):
    z = torch.randn(B, C)
    logits = {t: z.clone() for t in frames}
    total, terms = MFALoss()(logits, torch.randint(0, C, (B,)))
    for t in frames[:-1]:
        assert abs(terms[f"kl_{t}"].item()) < 1e-6
    torch.testing.assert_close(total, terms["ce"])


@pytest.mark.parametrize("frames", FRAME_SETS)
@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0, 2.0])
def test_total_is_ce_plus_lambda_sum_kl(frames, lam):
    logits = _logits(frames)
    y = torch.randint(0, C, (B,))
    total, terms = MFALoss(lambda_kl=lam)(logits, y)
    high = frames[-1]
    assert set(terms) == {"ce", "total"} | {f"kl_{t}" for t in frames[:-1]}
    torch.testing.assert_close(terms["ce"], F.cross_entropy(logits[high], y).detach())
    for t in frames[:-1]:  # KL(p_H || p_s), summed over classes, mean over the batch
        torch.testing.assert_close(terms[f"kl_{t}"], _manual_kl(logits[high], logits[t]).detach())
    expected = terms["ce"] + lam * sum(terms[f"kl_{t}"] for t in frames[:-1])
    torch.testing.assert_close(total.detach(), expected)
    torch.testing.assert_close(terms["total"], total.detach())


def test_kl_direction_is_teacher_to_student():
    zh, zl = torch.tensor([[3.0, 0.0, -1.0]]), torch.tensor([[0.0, 2.0, 0.0]])
    _, terms = MFALoss()({4: zl, 16: zh}, torch.tensor([0]))
    torch.testing.assert_close(terms["kl_4"], _manual_kl(zh, zl))
    assert not torch.allclose(terms["kl_4"], _manual_kl(zl, zh))  # KL is asymmetric


@pytest.mark.parametrize("frames", FRAME_SETS)
def test_kl_gradient_does_not_reach_the_teacher(frames):
    y = torch.randint(0, C, (B,))
    logits = _logits(frames)
    total, _ = MFALoss(lambda_kl=1.0)(logits, y)
    total.backward()
    high = frames[-1]
    ref = logits[high].detach().clone().requires_grad_(True)
    F.cross_entropy(ref, y).backward()
    torch.testing.assert_close(logits[high].grad, ref.grad)  # CE only: no KL gradient on z_H
    for t in frames[:-1]:
        assert logits[t].grad.abs().sum() > 0  # the students do get the KL gradient


def test_highest_stream_is_max_key_not_dict_order():
    logits = _logits((4, 8, 16))
    y = torch.randint(0, C, (B,))
    reordered = {16: logits[16], 4: logits[4], 8: logits[8]}
    a, ta = MFALoss()(logits, y)
    b, tb = MFALoss()(reordered, y)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ta["ce"], F.cross_entropy(logits[16], y).detach())


def test_soft_labels_match_hard_labels_and_mixup():
    logits = _logits((4, 16), grad=False)
    y = torch.randint(0, C, (B,))
    hard, th = MFALoss()(logits, y)
    soft, ts = MFALoss()(logits, F.one_hot(y, C).float())
    torch.testing.assert_close(hard, soft)
    mix = 0.7 * F.one_hot(y, C).float() + 0.3 * F.one_hot(y.flip(0), C).float()
    _, tm = MFALoss()(logits, mix)
    manual = -(mix * F.log_softmax(logits[16], 1)).sum(1).mean()
    torch.testing.assert_close(tm["ce"], manual)


def test_label_smoothing_matches_torch():
    z, y = torch.randn(B, C), torch.randint(0, C, (B,))
    torch.testing.assert_close(soft_cross_entropy(z, y, 0.1), F.cross_entropy(z, y, label_smoothing=0.1))
    torch.testing.assert_close(soft_cross_entropy(z, F.one_hot(y, C).float(), 0.1),
                               F.cross_entropy(z, y, label_smoothing=0.1))


@pytest.mark.parametrize("frames", FRAME_SETS)
def test_ce_all_mode(frames):
    logits = _logits(frames)
    y = torch.randint(0, C, (B,))
    total, terms = MFALoss(mode="ce_all")(logits, y)
    assert set(terms) == {"ce", "total"} | {f"ce_{t}" for t in frames}
    ces = [F.cross_entropy(logits[t], y) for t in frames]
    torch.testing.assert_close(total, sum(ces))
    torch.testing.assert_close(terms["ce"], ces[-1].detach())
    total.backward()
    for t in frames:
        ref = logits[t].detach().clone().requires_grad_(True)
        F.cross_entropy(ref, y).backward()
        torch.testing.assert_close(logits[t].grad, ref.grad)


@pytest.mark.parametrize("frames", FRAME_SETS)
@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_ce_kl_mode_is_ce_all_plus_the_kl_terms(frames, lam):
    logits = _logits(frames)
    y = torch.randint(0, C, (B,))
    total, terms = MFALoss(lambda_kl=lam, mode="ce_kl")(logits, y)
    ce_all, t_ce = MFALoss(mode="ce_all")(logits, y)
    mfal, t_kl = MFALoss(lambda_kl=lam)(logits, y)
    assert set(terms) == set(t_ce) | set(t_kl)
    torch.testing.assert_close(total, ce_all + (mfal - t_kl["ce"]))  # sum_s CE_s + lam * sum KL
    for t in frames[:-1]:
        torch.testing.assert_close(terms[f"kl_{t}"], t_kl[f"kl_{t}"])
        assert terms[f"ce_{t}"] > 0
    total.backward()  # the teacher is detached: the highest stream's gradient is its CE's alone
    ref = logits[frames[-1]].detach().clone().requires_grad_(True)
    F.cross_entropy(ref, y).backward()
    torch.testing.assert_close(logits[frames[-1]].grad, ref.grad)


@pytest.mark.parametrize("mode", ["mfal", "ce_all", "ce_kl"])
def test_single_stream_is_plain_ce(mode):
    z, y = torch.randn(B, C, requires_grad=True), torch.randint(0, C, (B,))
    total, terms = MFALoss(mode=mode)({16: z}, y)
    torch.testing.assert_close(total, F.cross_entropy(z, y))
    assert not any(k.startswith("kl_") for k in terms)


def test_terms_are_detached_scalars_and_low_precision_works():
    logits = {t: z.bfloat16() for t, z in _logits((4, 8, 16)).items()}
    total, terms = MFALoss()(logits, torch.randint(0, C, (B,)))
    assert total.requires_grad and total.dtype == torch.float32
    for v in terms.values():
        assert v.dim() == 0 and not v.requires_grad


def test_bad_input_raises_clear_errors():
    loss = MFALoss()
    y = torch.randint(0, C, (B,))
    with pytest.raises(ValueError, match="non-empty dict"):
        loss({}, y)
    with pytest.raises(ValueError, match="same shape"):
        loss({4: torch.randn(B, C), 16: torch.randn(B, C + 1)}, y)
    with pytest.raises(ValueError, match="batch size"):
        loss({16: torch.randn(B, C)}, y[:-1])
    with pytest.raises(ValueError, match="integer class indices"):
        loss({16: torch.randn(B, C)}, torch.rand(B))
    with pytest.raises(ValueError, match="soft target shape"):
        loss({16: torch.randn(B, C)}, torch.rand(B, C + 1))
    with pytest.raises(ValueError, match="mode"):
        MFALoss(mode="kl_all")
    with pytest.raises(ValueError, match="lambda_kl"):
        MFALoss(lambda_kl=-1)
