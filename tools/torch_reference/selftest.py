"""--selftest: properties the model statement must have whatever its weights, checked on a small perturbed
model in float64 and float32: the sequential reverse inverts the forward (whole flow and each block), and
guidance is a no-op when y_null == y or when w is negligible."""
import torch

from model import build_model, make_config

def selftest():
    cfg = make_config(dict(channels=64, head_dim=32, txt_size=3, txt_dim=5, num_blocks=3,
                           layers_per_block=[1, 1, 2], seq_order="L2R"))
    model = build_model(cfg, seed=7, perturb=0.05).double()
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    ok = True

    def report(name, err, tol):
        nonlocal ok
        ok &= err <= tol
        print(f"{name:<52}{err:10.2e}  (tol {tol:.0e})  {'ok' if err <= tol else 'FAIL'}")
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        m, xd, yd = model.to(dtype), x.to(dtype), y.to(dtype)
        with torch.no_grad():
            z, _, outs = m(xd, yd)
            x0, _ = m.reverse(z, yd)
            report(f"{dtype}: max|reverse(forward(x)) - x|", (x0 - xd).abs().max().item(), tol)
            for k, blk in enumerate(m.blocks):
                ub = blk.reverse(outs[k + 1], yd if blk.cond else None)
                report(f"{dtype}: block {k} max|reverse(forward(u)) - u|", (ub - outs[k]).abs().max().item(), tol)
            xg, _ = m.reverse(z, torch.cat([yd, yd]), 3.0)
            report(f"{dtype}: CFG with y_null == y (w=3) vs unguided", (xg - x0).abs().max().item(), tol)
            xw, _ = m.reverse(z, torch.cat([yd, torch.zeros_like(yd)]), 1e-30)
            report(f"{dtype}: CFG w=1e-30 vs unguided", (xw - x0).abs().max().item(), tol)
    print("selftest:", "PASS" if ok else "FAIL")
    return 0 if ok else 1
