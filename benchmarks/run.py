#!/usr/bin/env python
"""mergedepth benchmarks: the machine's matmul ceiling, FLOPs and the floor of a training step, phase-1/phase-2 step
breakdowns, inference throughput per precision, loader and preparation throughput, and peak memory.

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--out benchmarks/results/NAME.json]
    python benchmarks/run.py --profile [--device cpu|cuda]     # torch.profiler of a phase-2 step -> results/profile_<device>.*

Every figure is the median of several runs after warm-up; every ratio is between figures measured in this run.
"""
import argparse, contextlib, json, os, platform, resource, shutil, statistics, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mergedepth.model import DepthNet, UpProjection, seed_design
from mergedepth.train import stereo_losses, GraphedStep, forward_pair
from mergedepth.geometry import StereoCalib
from mergedepth.data import KittiStereo, collate_stereo, prepare_kitti
from mergedepth.testing import sample_raw_tree
from mergedepth.synth import make_synth

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
    "The best GFLOP/s of `runs` timed n x n products (a ceiling: what the machine can do; shared CPUs drift, so not the median)."
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(2): a @ b
    ts = []
    for _ in range(runs):
        sync(dev); t = time.perf_counter(); a @ b; sync(dev); ts.append(time.perf_counter() - t)
    return 2 * n ** 3 / min(ts) / 1e9

def make_batch(B, hw, dev):
    torch.manual_seed(0)
    K = np.array([[721.5 * hw[1] / 1242, 0, 609.6 * hw[1] / 1242], [0, 721.5 * hw[0] / 375, 172.9 * hw[0] / 375], [0, 0, 1]])
    rig = StereoCalib(K, K, np.eye(3), [-0.54, 0, 0], hw).to(torch.float32).expand(B).to(dev)
    gt = torch.zeros(B, 1, *hw, device=dev); gt[..., ::4, ::7] = torch.rand_like(gt[..., ::4, ::7]) * 60 + 2
    return dict(left=torch.rand(B, 3, *hw, device=dev).contiguous(memory_format=torch.channels_last),
                right=torch.rand(B, 3, *hw, device=dev).contiguous(memory_format=torch.channels_last),
                left_gt=gt, right_gt=gt.clone(), calib=rig)

def bench_loss(phase):
    "The loss every benchmark step uses: all terms of `phase` on, weight 1."
    return lambda dl, dr, b: stereo_losses(dl, dr, b, phase, alpha=1., beta=1., gamma=1.)

def graphed(nets, params_of, phase, dtype):
    "A GraphedStep over `nets` (plain or compiled) with fresh fused Adam optimizers for the parameters of `params_of`."
    return GraphedStep(nets, adam(params_of), bench_loss(phase), dtype, warmup=2)

def step_flops(nets, batch, phase):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        dl, dr = forward_pair(nets, batch)
        loss, _ = bench_loss(phase)(dl, dr, batch)
        loss.backward()
    for n in nets: n.zero_grad(set_to_none=True)
    return fc.get_total_flops()

def step_breakdown(nets, opts, batch, phase, dev, dtype, runs):
    "Median seconds of forward, losses, backward and optimizer of one training step of both networks."
    parts = {k: [] for k in ('forward', 'losses', 'backward', 'optimizer')}
    for i in range(runs + 1):
        sync(dev); t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            dl, dr = forward_pair(nets, batch)
        sync(dev); t1 = time.perf_counter()
        loss, _ = bench_loss(phase)(dl, dr, batch)
        sync(dev); t2 = time.perf_counter()
        loss.backward()
        sync(dev); t3 = time.perf_counter()
        for o in opts: o.step(); o.zero_grad(set_to_none=True)
        sync(dev); t4 = time.perf_counter()
        if i: [parts[k].append(v) for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3))]
    return {k: statistics.median(v) for k, v in parts.items()}

def adam(nets, fused=True):
    return [torch.optim.Adam(n.parameters(), lr=1e-5, **({'fused': True} if fused else {'foreach': True})) for n in nets]

def graphed_time(nets, batch, phase, dev, dtype, runs):
    "Median seconds of a whole training step recorded as a CUDA graph (GraphedStep) and replayed."
    gs = graphed(nets, nets, phase, dtype)
    return timed(lambda: gs(batch), dev, warmup=4, runs=runs)

@contextlib.contextmanager
def sliced_interleave(on:bool=True):
    "The earlier up-projection: the four parity maps pixel-shuffled into one map whose two channel halves are sliced."
    def forward(self, x):
        ee, eo, oe, oo = self.up.phases(x); B, C, h, w = ee.shape
        y = F.pixel_shuffle(torch.stack([ee, eo, oe, oo], 2).reshape(B, C * 4, h, w), 2)
        return self._rest(y[:, :self.cout], y[:, self.cout:])
    keep = UpProjection.forward
    if on: UpProjection.forward = forward
    try: yield
    finally: UpProjection.forward = keep

def interleave_round(nets, opts, batch, dev, runs) -> dict:
    "Seconds of a phase-2 bf16 step with the up-projection as it is ('per_branch') and as it was ('sliced'), one after the other."
    out = {}
    for k in ('per_branch', 'sliced'):
        with sliced_interleave(k == 'sliced'): out[k] = sum(step_breakdown(nets, opts, batch, 2, dev, torch.bfloat16, runs).values())
    return out

KERNEL_KINDS = [('convolution and matrix products', ('conv', 'gemm', 'cutlass', 'xmma', 'sm90', 'sm80', 'implicit', 'wgrad', 'dgrad', 'cudnn', 'nhwc', 'nchw')),
                ('batch norm', ('batch_norm', 'batchnorm', 'bn_fw', 'bn_bw', 'welford')),
                ('optimizer', ('adam', 'multi_tensor')),
                ('grid sample and losses', ('grid_sampler', 'upsample', 'avg_pool', 'max_pool', 'pixel_shuffle')),
                ('reductions', ('reduce',)),
                ('elementwise', ('elementwise', 'vectorized', 'unrolled', 'copy', 'fill', 'where', 'cat'))]

def kind_of(name):
    n = name.lower()
    return next((k for k, keys in KERNEL_KINDS if any(x in n for x in keys)), 'other')

def profile(a, dev):
    "torch.profiler over a few phase-2 bf16 steps: time by operation (CPU) or by kernel kind and GPU busy share (CUDA)."
    from torch.profiler import profile as tprofile, ProfilerActivity
    cuda = dev.type == 'cuda'
    B, hw, dtype = (8 if cuda else 2), (192, 640), torch.bfloat16
    batch = make_batch(B, hw, dev)
    torch.manual_seed(0)
    nets = [DepthNet(a.encoder, pretrained=False).to(dev, memory_format=torch.channels_last).train() for _ in range(2)]
    opts = adam(nets)
    R = dict(machine=machine(dev), batch=B, hw=hw, encoder=a.encoder, precision='bf16', runs={})
    lines = []
    variants = [('eager', None), ('cuda_graph', 'graph'), ('compiled', 'compile'), ('compiled_cuda_graph', 'compile+graph')] if cuda else [('eager', None)]
    out = Path(a.out) if a.out else Path(__file__).parent/'results'/f"profile_{'cuda' if cuda else 'cpu'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    cnets = None
    for name, how in variants:
      try:
        t_c = time.time()
        ns = nets
        if how and 'compile' in how:
            cnets = cnets or [torch.compile(n) for n in nets]; ns = cnets
        if how and 'graph' in how:
            gs = graphed(ns, nets, 2, dtype)
            fn = lambda: gs(batch)
        else:
            def fn():
                with torch.autocast(dev.type, dtype=dtype):
                    dl, dr = ns[0](batch['left']), ns[1](batch['right'])
                loss, _ = bench_loss(2)(dl, dr, batch)
                loss.backward()
                for o in opts: o.step(); o.zero_grad(set_to_none=True)
        for _ in range(4 if cuda else 1): fn()
        sync(dev); setup_s = time.time() - t_c
        t_w = timed(fn, dev, warmup=0, runs=10 if cuda else 2)          # without the profiler's own overhead
        steps = 5 if cuda else 2
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        sync(dev); t = time.perf_counter()
        with tprofile(activities=acts) as prof:
            for _ in range(steps): fn()
            sync(dev)
        wall = (time.perf_counter() - t) / steps
        run = dict(wall_s=wall, step_s=t_w, setup_s=setup_s)
        if cuda:
            kinds, n_k, tot = {}, 0, 0.
            for e in prof.events():                         # kernels are events on the device (graph replays too)
                if str(getattr(e, 'device_type', '')).endswith('CUDA'):
                    d = (e.device_time_total if hasattr(e, 'device_time_total') else e.cuda_time_total) / 1e6 / steps
                    kinds[kind_of(e.name)] = kinds.get(kind_of(e.name), 0) + d; tot += d; n_k += 1
            if tot == 0:                                    # older profilers attach them to the launching operation
                for e in prof.events():
                    for k in getattr(e, 'kernels', []):
                        d = k.duration / 1e6 / steps; kinds[kind_of(k.name)] = kinds.get(kind_of(k.name), 0) + d; tot += d; n_k += 1
            run.update(kernel_s=tot, kernels_per_step=n_k / steps, gpu_busy=tot / wall, by_kind=kinds)
            key = 'self_device_time_total' if hasattr(prof.key_averages()[0], 'self_device_time_total') else 'self_cuda_time_total'
            table = prof.key_averages().table(sort_by=key, row_limit=20)
        else:
            ka = prof.key_averages()
            ops = sorted(((e.key, e.self_cpu_time_total / 1e6 / steps, e.count / steps) for e in ka), key=lambda x: -x[1])
            run.update(top_ops=[dict(op=k, s=v, calls=c) for k, v, c in ops[:25]], ops_per_step=sum(e.count for e in ka) / steps)
            table = ka.table(sort_by='self_cpu_time_total', row_limit=25)
        R['runs'][name] = run
        lines += [f"== {name}: {t_w * 1e3:.1f} ms per step ({wall * 1e3:.1f} ms under the profiler)", table]
        msg = f"profile {name}: {t_w * 1e3:.1f} ms per step ({wall * 1e3:.1f} ms profiled, setup {setup_s:.0f} s)"
        if cuda: msg += f", kernels {run['kernel_s'] * 1e3:.1f} ms ({run['gpu_busy']:.0%} busy, {run['kernels_per_step']:.0f} kernels); " + ', '.join(f"{k} {v * 1e3:.1f} ms" for k, v in sorted(kinds.items(), key=lambda x: -x[1]))
        else: msg += '; ' + ', '.join(f"{o['op']} {o['s']:.2f} s" for o in run['top_ops'][:8])
        print(msg, flush=True)
      except Exception as e:
        R['runs'][name] = dict(error=f"{type(e).__name__}: {str(e)[:500]}")
        print(f"profile {name} failed: {type(e).__name__}: {str(e)[:500]}", flush=True)
      out.write_text(json.dumps(R, indent=1) + '\n'); out.with_suffix('.txt').write_text('\n'.join(lines) + '\n')
    print(f"wrote {out} and {out.with_suffix('.txt')}")

def loader_rate(ds, workers:int) -> float:
    """Images/s through a DataLoader: workers kept between epochs (their start-up is not throughput), 3 epochs timed after one
    to warm up, batches of 2 pairs so that every worker has batches to make (a worker makes whole batches)."""
    dl = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=True, num_workers=workers, collate_fn=collate_stereo, drop_last=True,
                                     persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
    def epoch():
        n = 0
        for b in dl: n += 2 * len(b['name'])
        return n
    epoch()
    t = time.perf_counter(); n_img = sum(epoch() for _ in range(3))
    return n_img / (time.perf_counter() - t)

def loader_targets(R, dev) -> dict:
    "The loader's rate with the default workers over what the default step consumes (2 images per pair)."
    from mergedepth.train import default_workers
    w = default_workers(dev)
    rates = {int(k): v for k, v in R['loader_images_per_s'].items()}
    rate = rates.get(w, max(rates.values()))
    steps = {k: v['total'] for k, v in R['step'].items()}
    key = 'phase2_bf16_cuda_graph_batch8' if dev.type == 'cuda' and 'phase2_bf16_cuda_graph_batch8' in steps else 'phase2_bf16'
    return dict(default_workers=w, loader_at_default_workers=rate, step_used=key, loader_vs_step=rate / (2 * R['batch'] / steps[key]))

def data_section(R, a, cuda, hw):
    """Loader images/s by workers: the training-size cache (what training reads by default) against decoding the PNGs
    (synthetic 375x1242 frames; real KITTI frames prepared at full size and at the training size), colour augmentation
    left to the step in both, and the loader as it was before the cache (colour in the loader); prepare frames/s."""
    tmp = Path(tempfile.mkdtemp())
    frames = 32 if (cuda or not a.quick) else 16
    make_synth(tmp/'synth', drives=1, frames=frames, hw=(375, 1242), workers=2, progress=False)
    ws = (0, 1, 2) + ((8, 14) if cuda else ())
    t = time.perf_counter(); KittiStereo(tmp/'synth', hw=hw, cache=True, cache_workers=2, progress=False)
    R['cache_build_frames_per_s'] = frames / (time.perf_counter() - t)
    cases = dict(loader_images_per_s=dict(cache=True, defer_colour=True), loader_png_images_per_s=dict(defer_colour=True),
                 loader_png_colour_in_loader_images_per_s={})
    for key, kw in cases.items():
        R[key] = {}
        for w in ws:
            R[key][w] = loader_rate(KittiStereo(tmp/'synth', hw=hw, augment=True, progress=False, **kw), w)
            print(f"{key}, {w} worker(s): {R[key][w]:.1f} images/s", flush=True)
    R['cache_vs_png'] = {w: R['loader_images_per_s'][w] / R['loader_png_images_per_s'][w] for w in ws}
    print('cache / PNG by workers: ' + ', '.join(f"{w}: {v:.1f}x" for w, v in R['cache_vs_png'].items()))
    sample = Path(os.environ.get('MERGEDEPTH_KITTI_SAMPLE', Path(__file__).resolve().parents[2]/'shared'/'kitti_sample'))
    if (sample/'lidar_frame'/'velodyne.bin').is_file():
        raw = tmp/'raw'
        sample_raw_tree(raw, 20 if a.quick else 40, sample)
        s = prepare_kitti(raw, tmp/'prepared', workers=2, progress=False)
        R['prepare_frames_per_s'] = s['frames'] / s['seconds']
        s = prepare_kitti(raw, tmp/'prepared_small', workers=2, progress=False, image_size=hw)
        R['prepare_small_frames_per_s'] = s['frames'] / s['seconds']
        print(f"mergedepth_prepare (2 workers): {R['prepare_frames_per_s']:.1f} frames/s; with --image_size {hw[0]}x{hw[1]}: {R['prepare_small_frames_per_s']:.1f}")
        R['loader_kitti_images_per_s'] = {}
        for name, folder, kw in (('full size PNG', tmp/'prepared', {}), (f'{hw[0]}x{hw[1]} PNG', tmp/'prepared_small', {}),
                                 ('cache', tmp/'prepared', dict(cache=True))):
            for w in (0, 1):
                ds = KittiStereo(folder, hw=hw, augment=True, defer_colour=True, progress=False, **kw)
                R['loader_kitti_images_per_s'][f'{name}, {w} worker(s)'] = r = loader_rate(ds, w)
                print(f"loader, real KITTI frame, {name}, {w} worker(s): {r:.1f} images/s", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)

def e2e_section(R, a, dev, hw, B):
    """Phase-2 training end to end: `train()` with its defaults (the training-size cache, the default workers, colour
    augmentation in the step, a CUDA graph on one GPU) on 375x1242 synthetic frames, in pairs per second (median over the
    second half of the steps, after warm-up), against the step alone measured above; the projected time of one epoch
    of the Eigen training split (22,600 pairs)."""
    from mergedepth.train import train, default_workers
    cuda = dev.type == 'cuda'
    steps = 40 if cuda else 8
    tmp = Path(tempfile.mkdtemp())
    make_synth(tmp/'synth', drives=1, frames=B * steps + 8, hw=(375, 1242), workers=min(8, os.cpu_count() or 2), progress=False)
    (tmp/'synth'/'splits').rename(tmp/'no_splits')                         # one epoch over every frame, no validation pass
    # pyramid 0, as when continuing from phase-1 networks: from scratch each new pyramid level's first step plans its kernels
    # again, which a real run amortises over thousands of steps and an 8-step benchmark cannot
    train(tmp/'synth', phase=2, epochs=1, max_steps=steps, batch_size=B, encoder=a.encoder, pretrained=False, height=hw[0], width=hw[1],
          image_output_dir=tmp/'img', model_output_dir=tmp/'mod', progress=False, tensorboard=False, print_every=0, bn_batches=0,
          device=dev.type, keep_epoch_models=1, pyramid=0)
    rows = [json.loads(l) for l in (tmp/'img'/'metrics.jsonl').read_text().splitlines() if l.strip()]
    secs = [r['sec'] for r in rows if r.get('kind') == 'step']
    sec = statistics.median(secs[len(secs) // 2:])
    key = 'phase2_bf16_cuda_graph_batch8' if cuda and 'phase2_bf16_cuda_graph_batch8' in R['step'] else 'phase2_bf16'
    step_only = R['step'][key]['total']
    R['end_to_end'] = dict(steps=steps, batch=B, workers=default_workers(dev), sec_per_step=sec, pairs_per_s=B / sec,
                           step_only_key=key, step_only_pairs_per_s=B / step_only, vs_step_only=step_only / sec,
                           eigen_epoch_s=22600 / (B / sec), all_step_secs=secs)
    e = R['end_to_end']
    print(f"end to end, phase 2 through train() ({e['workers']} worker(s), batch {B}): {e['pairs_per_s']:.2f} pairs/s against "
          f"{e['step_only_pairs_per_s']:.2f} for the step alone ({e['vs_step_only']:.2f}x); an Eigen epoch (22,600 pairs): "
          f"{e['eigen_epoch_s'] / 3600:.2f} h", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='fewer repetitions, smaller loader and preparation runs')
    ap.add_argument('--device', default='auto')
    ap.add_argument('--out', default=None, help='JSON file for the results (default benchmarks/results/<device>.json)')
    ap.add_argument('--encoder', default='resnet50')
    ap.add_argument('--profile', action='store_true', help='only profile a phase-2 step (torch.profiler)')
    ap.add_argument('--no_compile', action='store_true', help='skip the torch.compile rows')
    ap.add_argument('--data_only', action='store_true', help='only the data section, updating the results file in place')
    a = ap.parse_args()
    dev = torch.device('cuda' if a.device == 'auto' and torch.cuda.is_available() else ('cpu' if a.device == 'auto' else a.device))
    if a.profile: return profile(a, dev)
    if a.data_only:
        out = Path(a.out) if a.out else Path(__file__).parent/'results'/f"{'cuda' if dev.type == 'cuda' else 'cpu'}.json"
        R = json.loads(out.read_text()); data_section(R, a, dev.type == 'cuda', tuple(R['hw'])); e2e_section(R, a, dev, tuple(R['hw']), R['batch'])
        R['loader_note'] = (f"loader, prepare and end-to-end rows measured on {time.strftime('%Y-%m-%d')} (--data_only); the step, "
                            "inference and memory rows are from the earlier full run")
        R['targets'].update(loader_targets(R, dev)); out.write_text(json.dumps(R, indent=1) + '\n'); print(json.dumps(R['targets'])); return
    cuda = dev.type == 'cuda'
    runs = 2 if a.quick else 3
    B = 8 if cuda else 2
    hw = (192, 640)
    R = dict(machine=machine(dev), quick=a.quick, batch=B, hw=hw, encoder=a.encoder, seed=SEED)
    print(f"machine: {R['machine']}")

    # 1. the ceiling: dense matrix products
    n = 8192 if cuda else 2048
    R['matmul_gflops'] = {p: matmul_rate(dev, dt, n, 10) for p, dt in (('fp32', torch.float32), ('bf16', torch.bfloat16))}
    if cuda: R['matmul_gflops']['fp16'] = matmul_rate(dev, torch.float16, n, 10)
    print(f"matmul {n}x{n}: " + ', '.join(f"{k} {v:.0f} GFLOP/s" for k, v in R['matmul_gflops'].items()))

    # 2. training steps
    precisions = ['fp32', 'bf16'] + (['fp16'] if cuda else [])
    dts = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
    batch = make_batch(B, hw, dev)
    torch.manual_seed(0)
    nets = [DepthNet(a.encoder, pretrained=False).to(dev, memory_format=torch.channels_last).train() for _ in range(2)]
    opts = adam(nets)                                             # fused Adam, as train() uses
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
    # the optimizer: fused Adam (train's choice) against the multi-tensor ("foreach") implementation
    br = step_breakdown(nets, adam(nets, fused=False), batch, 2, dev, dts['bf16'], runs)
    R['step']['phase2_bf16_foreach_adam'] = dict(**br, total=sum(br.values()))
    print(f"phase 2 step bf16 with foreach Adam: {sum(br.values()):.3f} s (optimizer {br['optimizer']:.3f} s, fused: {R['step']['phase2_bf16']['optimizer']:.3f} s)")
    # channels_last on and off, for the default choice: interleaved, 3 times each, so that drifts of the machine cancel
    p_best, fmt_t = 'bf16', {'channels_last': [], 'contiguous': []}
    bcf = {**batch, 'left': batch['left'].contiguous(), 'right': batch['right'].contiguous()}
    for _ in range(3):
        for fmt, mf, bb in (('channels_last', torch.channels_last, batch), ('contiguous', torch.contiguous_format, bcf)):
            nets = [n.to(memory_format=mf) for n in nets]
            br = step_breakdown(nets, adam(nets), bb, 1, dev, dts[p_best], runs)         # Adam's moments in the same layout
            fmt_t[fmt].append(sum(br.values()))
    R['memory_format_phase1_bf16'] = {k: statistics.median(v) for k, v in fmt_t.items()}
    R['step'][f'phase1_{p_best}_contiguous'] = dict(total=R['memory_format_phase1_bf16']['contiguous'])
    print(f"phase 1 step {p_best}, interleaved 3x: channels_last {R['memory_format_phase1_bf16']['channels_last']:.3f} s, "
          f"contiguous {R['memory_format_phase1_bf16']['contiguous']:.3f} s")
    nets = [n.to(memory_format=torch.channels_last) for n in nets]
    # the up-projection's interleave: per-branch maps in the input's layout (now) against one pixel-shuffled map whose
    # channel halves are sliced (before); interleaved 3x
    il_t = {'per_branch': [], 'sliced': []}
    for _ in range(3):
        for k, v in interleave_round(nets, opts, batch, dev, runs).items(): il_t[k].append(v)
    R['interleave_phase2_bf16'] = {k: statistics.median(v) for k, v in il_t.items()}
    print(f"phase 2 step bf16, interleaved 3x: up-projection branches as separate maps {R['interleave_phase2_bf16']['per_branch']:.3f} s, "
          f"sliced from one pixel-shuffled map (before) {R['interleave_phase2_bf16']['sliced']:.3f} s", flush=True)
    if cuda:
        # on a GPU the step is bound by memory traffic and launches: a larger batch, and torch.compile (fusion)
        big = make_batch(4 * B, hw, dev)
        br = step_breakdown(nets, opts, big, 2, dev, dts['bf16'], runs)
        fl = R['step']['phase2_bf16']['gflop'] * 4
        R['step'][f'phase2_bf16_batch{4 * B}'] = dict(**br, total=sum(br.values()), gflop=fl, floor=fl / R['matmul_gflops']['bf16'],
                                                       vs_floor=sum(br.values()) / (fl / R['matmul_gflops']['bf16']),
                                                       losses_share=br['losses'] / sum(br.values()), tflops_achieved=fl / 1e3 / sum(br.values()))
        print(f"phase 2 step bf16, batch {4 * B}: {sum(br.values()):.3f} s, {fl / 1e3 / sum(br.values()):.1f} TFLOP/s")
        # the whole step recorded as a CUDA graph and replayed (train's default on one GPU)
        for bs in (B, 4 * B):
            try:
                bb = batch if bs == B else big
                t_ = graphed_time(nets, bb, 2, dev, dts['bf16'], 10)
                fl = R['step']['phase2_bf16']['gflop'] * bs / B
                R['step'][f'phase2_bf16_cuda_graph_batch{bs}'] = dict(total=t_, gflop=fl, floor=fl / R['matmul_gflops']['bf16'],
                                                                       vs_floor=t_ / (fl / R['matmul_gflops']['bf16']), tflops_achieved=fl / 1e3 / t_)
                print(f"phase 2 step bf16, CUDA graph, batch {bs}: {t_:.4f} s, {fl / 1e3 / t_:.1f} TFLOP/s, measured/floor {t_ / (fl / R['matmul_gflops']['bf16']):.1f}", flush=True)
            except Exception as e:
                print(f"CUDA graph at batch {bs} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
        del big
    try:
        if a.no_compile: raise RuntimeError('skipped (--no_compile)')
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
        for bs in ((B, 4 * B) if cuda else ()):                 # compiled networks inside the recorded step
            bb = batch if bs == B else make_batch(bs, hw, dev)
            t_ = graphed_time(cnets, bb, 2, dev, dts['bf16'], 10)
            fl = R['step']['phase2_bf16']['gflop'] * bs / B
            R['step'][f'phase2_bf16_compiled_cuda_graph_batch{bs}'] = dict(total=t_, gflop=fl, floor=fl / R['matmul_gflops']['bf16'],
                                                                            vs_floor=t_ / (fl / R['matmul_gflops']['bf16']), tflops_achieved=fl / 1e3 / t_)
            print(f"phase 2 step bf16, compiled + CUDA graph, batch {bs}: {t_:.4f} s, {fl / 1e3 / t_:.1f} TFLOP/s, measured/floor {t_ / (fl / R['matmul_gflops']['bf16']):.1f}", flush=True)
            del bb
        del cnets
    except Exception as e:
        print(f"torch.compile failed: {type(e).__name__}: {str(e)[:200]}")
    # the ceiling measured again after the steps; the better of the two is the ceiling, and the floors follow from it
    for p_, dt in (('fp32', torch.float32), ('bf16', torch.bfloat16)):
        again = matmul_rate(dev, dt, n, 10)
        R.setdefault('matmul_gflops_again', {})[p_] = again
        R['matmul_gflops'][p_] = max(R['matmul_gflops'][p_], again)
    for k, v in R['step'].items():
        if 'gflop' in v:
            ceil = R['matmul_gflops']['fp32' if 'fp32' in k else 'bf16']
            v.update(floor=v['gflop'] / ceil, vs_floor=v['total'] / (v['gflop'] / ceil))
    print("matmul ceiling (best before and after the steps): " + ', '.join(f"{k} {v:.0f} GFLOP/s" for k, v in R['matmul_gflops'].items())
          + "; measured/floor: " + ', '.join(f"{k} {v['vs_floor']:.2f}" for k, v in R['step'].items() if 'vs_floor' in v), flush=True)
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

    # 4. data: loader and preparation throughput; training end to end
    data_section(R, a, cuda, hw)
    e2e_section(R, a, dev, hw, B)
    R['peak_rss_gb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    if cuda: R['cuda_max_allocated_gb'] = torch.cuda.max_memory_allocated(dev) / 1e9
    print(f"peak RSS {R['peak_rss_gb']:.1f} GB" + (f", CUDA max allocated {R['cuda_max_allocated_gb']:.1f} GB" if cuda else ''))

    # targets
    best = min((v['total'], k) for k, v in R['step'].items() if k.startswith('phase2_') and 'contiguous' not in k and 'batch' not in k and 'compiled' not in k and 'foreach' not in k)
    R['targets'] = dict(phase2_speedup_vs_seed=SEED['phase2_step_s'] / best[0] if not cuda else None, phase2_best=best[1],
                        phase2_compiled_speedup_vs_seed=(SEED['phase2_step_s'] / R['step']['phase2_bf16_compiled']['total']
                                                         if not cuda and 'phase2_bf16_compiled' in R['step'] else None),
                        losses_share_max=max(v['losses_share'] for k, v in R['step'].items() if 'losses_share' in v),
                        **loader_targets(R, dev))
    print(json.dumps(R['targets']))
    out = Path(a.out) if a.out else Path(__file__).parent/'results'/f"{'cuda' if cuda else 'cpu'}.json"
    out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(R, indent=1) + '\n')
    print(f"wrote {out}")

if __name__ == '__main__':
    main()
