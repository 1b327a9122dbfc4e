"""hybridlib.muon.Muon is torch.optim.Muon's update: the same step in bf16, within bf16 rounding in fp32, the same
state (a checkpoint of either loads into the other), and matrices of one shape batched without mixing them."""
import torch

from hybridlib.bench import muon_step_seconds

from hybridlib.muon import Muon, newton_schulz

SHAPES = [(48, 16), (48, 16), (16, 48), (16, 16)]  # tall, tall (batched with the first), wide, square


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in SHAPES]


def _steps(optimizer_cls, params, n=3, **kwargs):
    opt = optimizer_cls(params, lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw", **kwargs)
    g = torch.Generator().manual_seed(1)
    for _ in range(n):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return opt


def test_in_bf16_it_takes_torch_muons_steps():
    ours, theirs = _params(), _params()
    _steps(Muon, ours, ns_dtype=torch.bfloat16)
    _steps(torch.optim.Muon, theirs)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)  # batched products may round the last bf16 bit otherwise


def test_in_fp32_it_is_the_same_iteration_within_bf16_rounding():
    ours, theirs = _params(), _params()
    _steps(Muon, ours, ns_dtype=torch.float32)
    opt = _steps(torch.optim.Muon, theirs)
    for a, b, start in zip(ours, theirs, _params()):
        assert (a - b).abs().max() < 0.02 * (b - start).abs().max()  # the steps agree to ~1 % of their size
    g = torch.randn(3, 40, 24)
    x = newton_schulz(g, opt.param_groups[0]["ns_coefficients"], 5, 1e-7, torch.float32)
    for i in range(3):  # each matrix of a batch orthogonalised on its own
        alone = newton_schulz(g[i:i + 1], opt.param_groups[0]["ns_coefficients"], 5, 1e-7, torch.float32)
        assert torch.allclose(x[i], alone[0], atol=1e-5)
    s = torch.linalg.svdvals(x[0])
    assert s.min() > 0.5 and s.max() < 1.5  # the quintic's band around 1, as torch's docstring says


def test_its_state_dict_is_torch_muons():
    ours, theirs = _params(), _params()
    mine = _steps(Muon, ours, ns_dtype=torch.float32)
    other = torch.optim.Muon(theirs, lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    other.load_state_dict(mine.state_dict())
    assert all(torch.equal(other.state[q]["momentum_buffer"], mine.state[p]["momentum_buffer"])
               for p, q in zip(ours, theirs))
    back = Muon(_params(), ns_dtype=torch.float32, lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    back.load_state_dict(other.state_dict())
    assert back.state_dict()["param_groups"] == mine.state_dict()["param_groups"]


def test_the_benchmark_times_each_implementation_of_one_step():
    times = muon_step_seconds("smoke", "cpu", quick=True)
    assert set(times) == {"torch.optim.Muon", "hybridlib bf16", "hybridlib fp32"} and all(t > 0 for t in times.values())
