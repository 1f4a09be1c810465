#!/usr/bin/env python
"""Cost of the binocular network against the two monocular ones: a phase-2 training step and inference, same machine, same run.

    python benchmarks/binocular.py [--hw 192x640] [--batch 8] [--encoder resnet50] [--steps 3] [--memory] [--out benchmarks/results/binocular_<machine>.json]

Both modes run the same losses (`stereo_losses`, phase 2, all four scales) on random images with the real KITTI rig;
the first step of each is a warm-up and not counted. On a GPU it also reports the peak training memory of each.

`--memory` (any machine, no timing) measures what a training step holds in memory, each mode in a process of its own:
the distinct tensors autograd keeps for the backward pass of one step (forward and losses; counted exactly, parameters
left out) under bf16 autocast, as the GPU trains, and in fp32; the bytes of the parameters, their gradients and Adam's
two moments; and the process's peak resident memory over two bf16 training steps above what it held before the
networks were built (an upper bound on the step's peak: the C allocator may keep freed memory).
"""
import argparse, json, os, platform, subprocess, sys, time
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

def nets_and_forward(arch, encoder, b, rig, dev):
    "the networks of `arch` (two monocular ones or one binocular) and their forward pass over the batch `b`, all scales"
    if arch == 'mono':
        nets = [DepthNet(encoder, pretrained=False).to(dev), DepthNet(encoder, pretrained=False).to(dev)]
        return nets, lambda: (nets[0](b['left'], all_scales=True), nets[1](b['right'], all_scales=True))
    nets = [MatchDepthNet(encoder, pretrained=False).to(dev)]
    return nets, lambda: nets[0](b['left'], b['right'], rig, all_scales=True)

def write_json(res, out):
    if out: Path(out).parent.mkdir(parents=True, exist_ok=True); Path(out).write_text(json.dumps(res, indent=1) + '\n')

def saved_for_backward(run, params):
    "bytes of the distinct storages autograd saves for the backward pass while `run()` builds the graph, parameters excluded"
    skip, seen = {p.untyped_storage().data_ptr() for p in params}, {}
    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in skip: seen[st.data_ptr()] = st.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t): run()
    return sum(seen.values())

def rss_bytes():
    "resident memory of this process now (Linux)"
    return int(Path('/proc/self/statm').read_text().split()[1]) * os.sysconf('SC_PAGE_SIZE')

def memory_of(arch, hw, batch, encoder):
    "what one phase-2 training step of `arch` holds (GiB), on the CPU; see the module's docstring"
    import resource
    gib = lambda n: round(n / 2 ** 30, 3)
    rig = kitti_rig(hw).expand(batch)
    b = dict(left=torch.rand(batch, 3, *hw), right=torch.rand(batch, 3, *hw), calib=rig)
    rss0 = rss_bytes(); torch.manual_seed(0)
    nets, fwd = nets_and_forward(arch, encoder, b, rig, 'cpu')
    params = [p for n in nets for p in n.parameters()]
    def loss(dt):
        with torch.autocast('cpu', dtype=dt, enabled=dt is not None): dl, dr = fwd()
        return stereo_losses(dl, dr, b, 2)[0]
    r = dict(params_grads_adam_gib=gib(4 * sum(p.numel() * p.element_size() for p in params)))
    opt = torch.optim.Adam(params, fused=True)
    for _ in range(2):                                                     # the training steps first: the peak is theirs
        opt.zero_grad(set_to_none=True); loss(torch.bfloat16).backward(); opt.step()
    r['peak_rss_above_start_gib_bf16'] = gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0)
    opt.zero_grad(set_to_none=True)
    for name, dt in (('bf16', torch.bfloat16), ('fp32', None)):           # graphs built, counted, then freed
        r[f'saved_for_backward_gib_{name}'] = gib(saved_for_backward(lambda: loss(dt), params))
    return r

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--hw', default='192x640'); ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--encoder', default='resnet50'); ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--out', default=None)
    ap.add_argument('--memory', action='store_true', help="measure what a training step holds in memory (CPU), time nothing")
    ap.add_argument('--memory_arch', help=argparse.SUPPRESS)
    a = ap.parse_args()
    hw = tuple(int(x) for x in a.hw.split('x'))
    if a.memory_arch: return print(json.dumps(memory_of(a.memory_arch, hw, a.batch, a.encoder)))
    if a.memory:
        rows = {}
        for arch in ('mono', 'stereo'):                                    # a process each: its own peak
            out = subprocess.run([sys.executable, __file__, '--memory_arch', arch, '--hw', a.hw, '--batch', str(a.batch),
                                  '--encoder', a.encoder], capture_output=True, text=True, check=True).stdout
            rows[arch] = json.loads(out.strip().splitlines()[-1])
        machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
        print(f"{machine}: a phase-2 training step at {hw[0]}x{hw[1]}, batch {a.batch}, {a.encoder}, GiB")
        print(f"{'mode':8s} {'saved bf16':>11s} {'saved fp32':>11s} {'params+grads+Adam':>18s} {'peak RSS bf16':>14s}")
        for k, r in rows.items():
            print(f"{k:8s} {r['saved_for_backward_gib_bf16']:11.2f} {r['saved_for_backward_gib_fp32']:11.2f} "
                  f"{r['params_grads_adam_gib']:18.2f} {r['peak_rss_above_start_gib_bf16']:14.2f}")
        return write_json(dict(machine=machine, torch=torch.__version__, hw=hw, batch=a.batch, encoder=a.encoder, rows=rows), a.out)
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dtype = torch.bfloat16 if dev.type == 'cuda' else None
    rig = kitti_rig(hw).to(dev).expand(a.batch)
    b = dict(left=torch.rand(a.batch, 3, *hw, device=dev), right=torch.rand(a.batch, 3, *hw, device=dev), calib=rig)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == 'cuda' else (lambda: None)
    rows = {}
    for arch in ('mono', 'stereo'):
        torch.manual_seed(0)
        nets, fwd = nets_and_forward(arch, a.encoder, b, rig, dev)
        opt = torch.optim.Adam([p for n in nets for p in n.parameters()], fused=True)
        if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
        ts = []
        for i in range(a.steps + 1):
            sync(); t = time.perf_counter()
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None): dl, dr = fwd()
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
    write_json(res, a.out)

if __name__ == '__main__': main()
