#!/usr/bin/env python
"""Where a trained binocular network is wrong, by true depth: its output against what its own matching and the raw
image correlation would answer, and whether the photometric loss prefers the truth.

    python benchmarks/binocular_errors.py --model runs/s2/models/stereo.pth --data_dir data [--split test] [--out errors.json]

For every lidar point of the split (to 80 m), in bins of true depth: abs_rel and the median of log(predicted / true)
of (a) the network's output; (b) the soft argmin of its matching probabilities (the estimate the decoder refines);
(c) the most probable hypothesis of those probabilities; (d) the most probable hypothesis of the learned features'
correlation alone and (e) of the images' own 5x5-patch normalised cross-correlation alone, as the network computes it
(at its `image_stride`: a plane sweep at 1/2 averaged to 1/4, or patches at 1/4), both before any learned aggregation;
the share of points off by more than 25 % and their share of the error (outliers against imprecision); and the
per-pixel photometric l1 (the right view warped into the left one) through the true depth and through the prediction.
A bias that (c) adds to (d) and (e) is learned by the aggregation; a loss that is lower at the truth than at the
prediction says the network under-fits rather than that the loss prefers its answer.
"""
import argparse, json, platform, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BINS = ((0, 5), (5, 10), (10, 20), (20, 40), (40, 80))

def outliers(e) -> dict:
    "The share of relative errors `e` (a tensor) above 25 % and their share of the error's sum."
    big = e > 0.25
    return dict(over_25_share=float(big.float().mean()), over_25_error_share=float(e[big].sum() / e.sum().clamp(min=1e-12)))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', required=True, help='a binocular stereo.pth')
    ap.add_argument('--data_dir', required=True, help='data in the training layout (03_data)')
    ap.add_argument('--split', default='test')
    ap.add_argument('--hw', default=None, help='HxW (default: the size the model was trained at)')
    ap.add_argument('--out', default=None, help='write the table as JSON here')
    ap.add_argument('--about', default='', help='how the model was trained, recorded in the JSON file')
    a = ap.parse_args()
    import torch, numpy as np, torch.nn.functional as F
    from torch.utils.data import DataLoader
    from mergedepth.binocular import MatchDepthNet, load_model, sweep_grid, correlation_volume, patch_features
    from mergedepth.geometry import inverse_warp
    from mergedepth.data import KittiStereo, collate_stereo
    net = load_model(a.model).eval()
    if not isinstance(net, MatchDepthNet): sys.exit(f"{a.model} holds a monocular network; this script reads a binocular one")
    hw = tuple(int(v) for v in a.hw.split('x')) if a.hw else (net.hw or (192, 640))
    ds = KittiStereo(a.data_dir, a.split, hw, need_gt=True)
    keys = ('output', 'soft_argmin', 'matching_mode', 'features_mode', 'images_mode')
    got = {k: [] for k in (*keys, 'true', 'photo_true', 'photo_pred')}
    t0 = time.time()
    with torch.no_grad():
        for b in DataLoader(ds, batch_size=8, collate_fn=collate_stereo):
            l, r, c, g = b['left'], b['right'], b['calib'], b['left_gt']
            B = l.shape[0]
            (f1, f2, _, _), p, _ = net.matching(l, r, c)
            m = net.features(f1, f2); fhw = m.shape[-2:]
            grid = sweep_grid(*net._rigs(c, B, l.shape[-2:]), net.depths, fhw, fhw)
            feat = correlation_volume(m, torch.cat([m[B:], m[:B]]), grid)
            img = net.image_cost(l, r, c, grid)           # as the network computes it
            if img is None:                               # a network without it: the 5x5 patches at 1/4
                pf = patch_features(F.interpolate(torch.cat([l, r]).float(), size=tuple(fhw), mode='area'), 5)
                img = correlation_volume(pf, torch.cat([pf[B:], pf[:B]]), grid)
            soft = net.to_depth(net.soft_argmin(p))
            mode = lambda v: net.depths[v.argmax(1, keepdim=True)]
            up = lambda x: F.interpolate(x[:B].float(), size=g.shape[-2:], mode='nearest')
            out = F.interpolate(net(l, r, c)[0].float(), size=g.shape[-2:], mode='bilinear', align_corners=False)
            sel = (g > 0) & (g < 80)
            for k, v in zip(keys, (out, up(soft), up(mode(p)), up(mode(feat)), up(mode(img)))): got[k].append(v[sel])
            got['true'].append(g[sel])
            cc = c.resize(g.shape[-2:])
            for k, depth in (('photo_true', torch.where(g > 0, g, out)), ('photo_pred', out)):
                warped, valid = inverse_warp(r, depth, cc.K1, cc.K2, cc.R, cc.t)
                e = (warped - l).abs().mean(1, keepdim=True)
                got[k].append(torch.where(valid.expand_as(e) > 0, e, torch.full_like(e, float('nan')))[sel])
    T = {k: torch.cat(v) for k, v in got.items()}
    z = T['true']
    rows = []
    for lo, hi in BINS:
        s = (z >= lo) & (z < hi)
        if not s.any(): continue
        row = dict(bin=f'{lo}-{hi} m', points=int(s.sum()), share=float(s.float().mean()))
        for k in keys:
            e = (T[k][s] - z[s]).abs() / z[s]
            row[k] = dict(abs_rel=float(e.mean()), median_log_ratio=float((T[k][s] / z[s]).log().median()), **outliers(e))
        pt, pp = T['photo_true'][s], T['photo_pred'][s]
        ok = ~(pt.isnan() | pp.isnan())
        row['photometric'] = dict(at_truth=float(pt[ok].mean()), at_prediction=float(pp[ok].mean()),
                                  truth_lower_share=float((pt[ok] < pp[ok]).float().mean()))
        rows.append(row)
    print(f"{a.model} on {a.split} ({len(ds)} frames at {hw[0]}x{hw[1]}), {time.time() - t0:.0f} s")
    print('median log(predicted / true) [abs_rel] by true depth:')
    print(f"{'bin':>9s} {'share':>6s} " + ' '.join(f'{k:>20s}' for k in keys) + f" {'photometric truth / pred':>26s}")
    for w in rows:
        ph = w['photometric']
        print(f"{w['bin']:>9s} {w['share']:6.2f} " + ' '.join(f"{w[k]['median_log_ratio']:+8.3f} [{w[k]['abs_rel']:.3f}]    " for k in keys)
              + f" {ph['at_truth']:.4f} / {ph['at_prediction']:.4f} ({ph['truth_lower_share']:.2f})")
    print('points off by more than 25 % [their share of the error]:')
    for w in rows:
        print(f"{w['bin']:>9s} {w['share']:6.2f} " + ' '.join(f"{w[k]['over_25_share']:8.3f} [{w[k]['over_25_error_share']:.3f}]    " for k in keys))
    e = (T['output'] - z).abs() / z; o = outliers(e)
    print(f"all points: output abs_rel {float(e.mean()):.3f}, {o['over_25_share']:.3f} of them off by more than 25 % "
          f"carrying {o['over_25_error_share']:.3f} of the error")
    if a.out:
        info = dict(machine=f'{platform.machine()}, torch {torch.__version__}', model=str(a.model), data=str(a.data_dir),
                    split=a.split, hw=list(hw), command=' '.join(sys.argv), about=a.about)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(dict(info=info, bins=rows), indent=1) + '\n')

if __name__ == '__main__': main()
