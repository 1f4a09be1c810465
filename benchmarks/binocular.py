#!/usr/bin/env python
"""Cost of the binocular network against the two monocular ones: a phase-2 training step and inference, same machine, same run.

    python benchmarks/binocular.py [--hw 192x640] [--batch 8] [--encoder resnet50] [--steps 3] [--out benchmarks/results/binocular_<machine>.json]

Both modes run the same losses (`stereo_losses`, phase 2, all four scales) on random images with the real KITTI rig;
the first step of each is a warm-up and not counted. On a GPU it also reports the peak training memory of each.
"""
import argparse, json, platform, sys, time
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import torch
from mergedepth.model import DepthNet
from mergedepth.binocular import MatchDepthNet
from mergedepth.losses import stereo_losses
from mergedepth.geometry import StereoCalib

def kitti_rig(hw):
    K = torch.tensor([[721.5377, 0, 609.5593], [0, 721.5377, 172.854], [0, 0, 1]])   # KITTI 2011_09_26, P_rect_02 / P_rect_03
    return StereoCalib(K, K, torch.eye(3), torch.tensor([-0.5372, 0., 0.]), (375, 1242)).resize(hw)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--hw', default='192x640'); ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--encoder', default='resnet50'); ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    hw = tuple(int(x) for x in a.hw.split('x'))
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dtype = torch.bfloat16 if dev.type == 'cuda' else None
    rig = kitti_rig(hw).to(dev).expand(a.batch)
    b = dict(left=torch.rand(a.batch, 3, *hw, device=dev), right=torch.rand(a.batch, 3, *hw, device=dev), calib=rig)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == 'cuda' else (lambda: None)
    rows = {}
    for arch in ('mono', 'stereo'):
        torch.manual_seed(0)
        if arch == 'mono':
            nets = [DepthNet(a.encoder, pretrained=False).to(dev), DepthNet(a.encoder, pretrained=False).to(dev)]
            fwd = lambda all_scales: (nets[0](b['left'], all_scales=all_scales), nets[1](b['right'], all_scales=all_scales))
        else:
            nets = [MatchDepthNet(a.encoder, pretrained=False).to(dev)]
            fwd = lambda all_scales: nets[0](b['left'], b['right'], rig, all_scales=all_scales)
        opt = torch.optim.Adam([p for n in nets for p in n.parameters()], fused=True)
        if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
        ts = []
        for i in range(a.steps + 1):
            sync(); t = time.perf_counter()
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None): dl, dr = fwd(True)
            loss, _ = stereo_losses(dl, dr, b, 2)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sync()
            ts.append(time.perf_counter() - t)
        step = sorted(ts[1:])[len(ts[1:]) // 2]
        for n in nets: n.eval()
        with torch.no_grad(), torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            one = dict(left=b['left'][:1], right=b['right'][:1])
            inf = (lambda: (nets[0](one['left']), nets[1](one['right']))) if arch == 'mono' else (lambda: nets[0](one['left'], one['right'], rig[0]))
            inf(); sync(); t = time.perf_counter(); n_inf = 3 if dev.type == 'cpu' else 50
            for _ in range(n_inf): inf()
            sync(); pps = n_inf / (time.perf_counter() - t)
        rows[arch] = dict(step_s=round(step, 4), inference_pairs_per_s=round(pps, 2),
                          peak_train_memory_gib=round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if dev.type == 'cuda' else None)
        del nets, opt
    rows['stereo_over_mono_step'] = round(rows['stereo']['step_s'] / rows['mono']['step_s'], 3)
    machine = torch.cuda.get_device_name(0) if dev.type == 'cuda' else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    res = dict(machine=machine, torch=torch.__version__, hw=hw, batch=a.batch, encoder=a.encoder, precision='bf16' if dtype else 'fp32',
               steps_timed=a.steps, rows=rows)
    print(f"{machine}: phase-2 step at {hw[0]}x{hw[1]}, batch {a.batch}, {a.encoder}")
    print(f"{'mode':8s} {'step s':>8s} {'pairs/s (batch 1)':>18s} {'peak GiB':>9s}")
    for k in ('mono', 'stereo'): print(f"{k:8s} {rows[k]['step_s']:8.3f} {rows[k]['inference_pairs_per_s']:18.2f} {str(rows[k]['peak_train_memory_gib']):>9s}")
    print(f"stereo / mono step: {rows['stereo_over_mono_step']:.2f}x")
    if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=1) + '\n')

if __name__ == '__main__': main()
