#!/usr/bin/env python
"""mergedepth benchmarks: the machine's matmul ceiling, FLOPs and the floor of a training step, phase-1/phase-2 step
breakdowns, inference throughput per precision, loader and preparation throughput, and peak memory.

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--out benchmarks/results/NAME.json]

Every figure is the median of several runs after warm-up; every ratio is between figures measured in this run.
"""
import argparse, json, os, platform, resource, shutil, statistics, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mergedepth.model import DepthNet, seed_design
from mergedepth.train import stereo_losses
from mergedepth.geometry import StereoCalib
from mergedepth.data import KittiStereo, collate_stereo, make_synth, prepare_kitti

# the seed prototype's figures on this kind of machine (2 cores, AVX-512 with bf16), as recorded in the project's
# performance issue; the seed's per-pixel Python losses are not part of this project, so they are quoted, not re-run
SEED = dict(phase2_step_s=45.0, phase2_forward_s=5.4, phase2_recon_s=12.9, phase2_consistency_s=10.2, phase2_backward_s=16.7,
            model_gflop=140.0, fwd_bwd_batch8_per_net_s=22.0)

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def timed(fn, dev, warmup=1, runs=3):
    "Median seconds of fn() over `runs` after `warmup` calls."
    for _ in range(warmup): fn()
    ts = []
    for _ in range(runs):
        sync(dev); t = time.perf_counter(); fn(); sync(dev); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

def machine(dev):
    cpu = platform.processor()
    try: cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except Exception: pass
    return dict(cpu=cpu, threads=torch.get_num_threads(), torch=torch.__version__, python=platform.python_version(),
                device=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu')

def matmul_rate(dev, dtype, n, runs):
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    t = timed(lambda: a @ b, dev, warmup=2, runs=runs)
    return 2 * n ** 3 / t / 1e9

def make_batch(B, hw, dev):
    torch.manual_seed(0)
    K = np.array([[721.5 * hw[1] / 1242, 0, 609.6 * hw[1] / 1242], [0, 721.5 * hw[0] / 375, 172.9 * hw[0] / 375], [0, 0, 1]])
    rig = StereoCalib(K, K, np.eye(3), [-0.54, 0, 0], hw).to(torch.float32).expand(B).to(dev)
    gt = torch.zeros(B, 1, *hw, device=dev); gt[..., ::4, ::7] = torch.rand_like(gt[..., ::4, ::7]) * 60 + 2
    return dict(left=torch.rand(B, 3, *hw, device=dev).contiguous(memory_format=torch.channels_last),
                right=torch.rand(B, 3, *hw, device=dev).contiguous(memory_format=torch.channels_last),
                left_gt=gt, right_gt=gt.clone(), calib=rig)

def step_flops(nets, batch, phase):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        dl, dr = nets[0](batch['left']), nets[1](batch['right'])
        loss, _ = stereo_losses(dl, dr, batch, phase, alpha=1, beta=1, gamma=1)
        loss.backward()
    for n in nets: n.zero_grad(set_to_none=True)
    return fc.get_total_flops()

def step_breakdown(nets, opts, batch, phase, dev, dtype, runs):
    "Median seconds of forward, losses, backward and optimizer of one training step of both networks."
    parts = {k: [] for k in ('forward', 'losses', 'backward', 'optimizer')}
    for i in range(runs + 1):
        sync(dev); t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            dl, dr = nets[0](batch['left']), nets[1](batch['right'])
        sync(dev); t1 = time.perf_counter()
        loss, _ = stereo_losses(dl, dr, batch, phase, alpha=1., beta=1., gamma=1.)
        sync(dev); t2 = time.perf_counter()
        loss.backward()
        sync(dev); t3 = time.perf_counter()
        for o in opts: o.step(); o.zero_grad(set_to_none=True)
        sync(dev); t4 = time.perf_counter()
        if i: [parts[k].append(v) for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3))]
    return {k: statistics.median(v) for k, v in parts.items()}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='fewer repetitions, smaller loader and preparation runs')
    ap.add_argument('--device', default='auto')
    ap.add_argument('--out', default=None, help='JSON file for the results (default benchmarks/results/<device>.json)')
    ap.add_argument('--encoder', default='resnet50')
    a = ap.parse_args()
    dev = torch.device('cuda' if a.device == 'auto' and torch.cuda.is_available() else ('cpu' if a.device == 'auto' else a.device))
    cuda = dev.type == 'cuda'
    runs = 2 if a.quick else 3
    B = 8 if cuda else 2
    hw = (192, 640)
    R = dict(machine=machine(dev), quick=a.quick, batch=B, hw=hw, encoder=a.encoder, seed=SEED)
    print(f"machine: {R['machine']}")

    # 1. the ceiling: dense matrix products
    n = 8192 if cuda else 2048
    R['matmul_gflops'] = {p: matmul_rate(dev, dt, n, 10 if cuda else runs + 2) for p, dt in (('fp32', torch.float32), ('bf16', torch.bfloat16))}
    if cuda: R['matmul_gflops']['fp16'] = matmul_rate(dev, torch.float16, n, 10)
    print(f"matmul {n}x{n}: " + ', '.join(f"{k} {v:.0f} GFLOP/s" for k, v in R['matmul_gflops'].items()))

    # 2. training steps
    precisions = ['fp32', 'bf16'] + (['fp16'] if cuda else [])
    dts = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
    batch = make_batch(B, hw, dev)
    torch.manual_seed(0)
    nets = [DepthNet(a.encoder, pretrained=False).to(dev, memory_format=torch.channels_last).train() for _ in range(2)]
    opts = [torch.optim.Adam(n.parameters(), lr=1e-5) for n in nets]
    R['step'] = {}
    for phase in (1, 2):
        flops = step_flops(nets, batch, phase)
        for p in precisions:
            if p == 'fp16':
                continue     # fp16 needs loss scaling in training; its step time equals bf16's on Hopper (same tensor-core rate)
            br = step_breakdown(nets, opts, batch, phase, dev, dts[p], runs)
            total = sum(br.values())
            ceil = R['matmul_gflops'][p]
            R['step'][f'phase{phase}_{p}'] = dict(**br, total=total, gflop=flops / 1e9, floor=flops / 1e9 / ceil, vs_floor=total / (flops / 1e9 / ceil),
                                                   losses_share=br['losses'] / total, tflops_achieved=flops / total / 1e12)
            s = R['step'][f'phase{phase}_{p}']
            print(f"phase {phase} step {p}: {total:.3f} s (fwd {br['forward']:.3f}, losses {br['losses']:.3f}, bwd {br['backward']:.3f}, opt {br['optimizer']:.3f}); "
                  f"{flops / 1e9:.0f} GFLOP, floor {s['floor']:.3f} s, measured/floor {s['vs_floor']:.2f}, losses {s['losses_share']:.1%} of the step")
    # channels_last off, for the default choice
    nets_cf = [n.to(memory_format=torch.contiguous_format) for n in nets]
    bcf = {**batch, 'left': batch['left'].contiguous(), 'right': batch['right'].contiguous()}
    p_best = 'bf16'
    br = step_breakdown(nets_cf, opts, bcf, 1, dev, dts[p_best], runs)
    R['step'][f'phase1_{p_best}_contiguous'] = dict(**br, total=sum(br.values()))
    print(f"phase 1 step {p_best} without channels_last: {sum(br.values()):.3f} s")
    nets = [n.to(memory_format=torch.channels_last) for n in nets]
    if cuda:
        # on a GPU the step is bound by memory traffic and launches: a larger batch, and torch.compile (fusion)
        big = make_batch(4 * B, hw, dev)
        br = step_breakdown(nets, opts, big, 2, dev, dts['bf16'], runs)
        fl = R['step']['phase2_bf16']['gflop'] * 4
        R['step'][f'phase2_bf16_batch{4 * B}'] = dict(**br, total=sum(br.values()), gflop=fl, floor=fl / R['matmul_gflops']['bf16'],
                                                       vs_floor=sum(br.values()) / (fl / R['matmul_gflops']['bf16']),
                                                       losses_share=br['losses'] / sum(br.values()), tflops_achieved=fl / 1e3 / sum(br.values()))
        print(f"phase 2 step bf16, batch {4 * B}: {sum(br.values()):.3f} s, {fl / 1e3 / sum(br.values()):.1f} TFLOP/s")
        del big
        try:
            t = time.time()
            cnets = [torch.compile(n) for n in nets]
            step_breakdown(cnets, opts, batch, 2, dev, dts['bf16'], 1)                      # compiles
            br = step_breakdown(cnets, opts, batch, 2, dev, dts['bf16'], runs)
            fl = R['step']['phase2_bf16']['gflop']
            R['step']['phase2_bf16_compiled'] = dict(**br, total=sum(br.values()), gflop=fl, floor=fl / R['matmul_gflops']['bf16'],
                                                     vs_floor=sum(br.values()) / (fl / R['matmul_gflops']['bf16']),
                                                     losses_share=br['losses'] / sum(br.values()), tflops_achieved=fl / 1e3 / sum(br.values()),
                                                     compile_s=time.time() - t)
            print(f"phase 2 step bf16, torch.compile'd networks: {sum(br.values()):.3f} s (compiling took {time.time() - t:.0f} s)")
            del cnets
        except Exception as e:
            print(f"torch.compile failed: {type(e).__name__}: {str(e)[:200]}")
    # the seed's decoder design (naive up-projection) in the same run: forward + backward of one network
    torch.manual_seed(0)
    seed_net = seed_design(DepthNet(a.encoder, pretrained=False)).to(dev, memory_format=torch.channels_last).train()
    def fb(net): net(batch['left']).mean().backward()
    R['model_fwd_bwd'] = {'ours_fp32': timed(lambda: fb(nets[0]), dev, 1, runs), 'seed_design_fp32': timed(lambda: fb(seed_net), dev, 1, runs)}
    print(f"one network forward+backward, batch {B}: ours {R['model_fwd_bwd']['ours_fp32']:.2f} s, seed's decoder design {R['model_fwd_bwd']['seed_design_fp32']:.2f} s")
    del seed_net

    # 3. inference
    R['infer'] = {}
    for n_ in nets: n_.eval()
    with torch.no_grad():
        ref = nets[0](batch['left'][:1])
        for p in precisions:
            for bs in (1, 8):
                x = torch.rand(bs, 3, *hw, device=dev).contiguous(memory_format=torch.channels_last)
                def run_pair():
                    with torch.autocast(dev.type, dtype=dts[p], enabled=dts[p] is not None): nets[0](x); nets[1](x)
                t = timed(run_pair, dev, 1, runs if not cuda else 10)
                with torch.autocast(dev.type, dtype=dts[p], enabled=dts[p] is not None): low = nets[0](batch['left'][:1])
                R['infer'][f'{p}_b{bs}'] = dict(pairs_per_s=bs / t, median_rel_diff_vs_fp32=float(((low.float() - ref) / ref).abs().median()))
                print(f"inference {p} batch {bs}: {bs / t:.2f} pairs/s, median |d - d_fp32| / d_fp32 = {R['infer'][f'{p}_b{bs}']['median_rel_diff_vs_fp32']:.1e}")

    # 4. data: loader and preparation throughput
    tmp = Path(tempfile.mkdtemp())
    frames = 16 if a.quick else 32
    make_synth(tmp/'synth', drives=1, frames=frames, hw=(375, 1242), workers=2, progress=False)
    ds = KittiStereo(tmp/'synth', hw=hw, augment=True)
    R['loader_images_per_s'] = {}
    for w in (0, 1, 2):
        dl = torch.utils.data.DataLoader(ds, batch_size=B, shuffle=True, num_workers=w, collate_fn=collate_stereo, drop_last=True)
        def epoch():
            n = 0
            for b in dl: n += 2 * len(b['name'])
            return n
        epoch()
        t = time.perf_counter(); n_img = epoch(); R['loader_images_per_s'][w] = n_img / (time.perf_counter() - t)
        print(f"loader, {w} worker(s): {R['loader_images_per_s'][w]:.1f} images/s")
    sample = Path(os.environ.get('MERGEDEPTH_KITTI_SAMPLE', Path(__file__).resolve().parents[2]/'shared'/'kitti_sample'))
    if (sample/'lidar_frame'/'velodyne.bin').is_file():
        raw = tmp/'raw'; drv = raw/'2011_09_26'/'2011_09_26_drive_0001_sync'
        for sub in ('image_02/data', 'image_03/data', 'velodyne_points/data'): (drv/sub).mkdir(parents=True)
        for f in ('calib_cam_to_cam.txt', 'calib_velo_to_cam.txt'): shutil.copy(sample/'2011_09_26'/f, raw/'2011_09_26'/f)
        nf = 20 if a.quick else 40
        for i in range(nf):
            for cam in ('image_02', 'image_03'): shutil.copy(sample/'lidar_frame'/'image_02.png', drv/cam/'data'/f'{i:010d}.png')
            shutil.copy(sample/'lidar_frame'/'velodyne.bin', drv/'velodyne_points'/'data'/f'{i:010d}.bin')
        s = prepare_kitti(raw, tmp/'prepared', workers=2, progress=False)
        R['prepare_frames_per_s'] = s['frames'] / s['seconds']
        print(f"mergedepth_prepare (2 workers): {R['prepare_frames_per_s']:.1f} frames/s")
    shutil.rmtree(tmp, ignore_errors=True)
    R['peak_rss_gb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    if cuda: R['cuda_max_allocated_gb'] = torch.cuda.max_memory_allocated(dev) / 1e9
    print(f"peak RSS {R['peak_rss_gb']:.1f} GB" + (f", CUDA max allocated {R['cuda_max_allocated_gb']:.1f} GB" if cuda else ''))

    # targets
    best = min((v['total'], k) for k, v in R['step'].items() if k.startswith('phase2_') and 'contiguous' not in k and 'batch' not in k and 'compiled' not in k)
    R['targets'] = dict(phase2_speedup_vs_seed=SEED['phase2_step_s'] / best[0] if not cuda else None, phase2_best=best[1],
                        losses_share_max=max(v['losses_share'] for k, v in R['step'].items() if 'losses_share' in v),
                        loader_vs_step=max(R['loader_images_per_s'].values()) / (2 * B / best[0]))
    print(json.dumps(R['targets']))
    out = Path(a.out) if a.out else Path(__file__).parent/'results'/f"{'cuda' if cuda else 'cpu'}.json"
    out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(R, indent=1) + '\n')
    print(f"wrote {out}")

if __name__ == '__main__':
    main()
