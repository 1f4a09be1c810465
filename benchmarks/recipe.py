#!/usr/bin/env python
"""The training recipe on the harder synthetic scenes: which choices make the networks beat the image-blind baselines.

    python benchmarks/recipe.py --out benchmarks/results/recipe/<stage>_<machine>.json [--budget 420] [--parallel 5] [--quick]

Renders the scenes (03_data's `make_synth(hard=True)`), then trains ResNet-18 networks from scratch at 64x192:
stage 1 compares phase-1 and phase-2 variants (seed 0, scored on the `val` scenes); stage 2 continues the best phase-1
networks with phase 2 and repeats the chosen phase 1, phase 2 alone and phase 1 + phase 2 with seeds 1 and 2.
Every run is also scored on the `test` scenes, which no choice looked at. Beside each score: the best constant depth
(an oracle fitted on the scored scenes) and the row prior (fitted on the training lidar; 06_evaluate).
The results file is rewritten after every run, so a run stopped by the budget keeps what finished.
"""
import argparse, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def score(models, data, split, hw, device):
    "Validation metrics of the left network in `models` on `split`, with the row prior of the training lidar."
    import torch
    from torch.utils.data import DataLoader
    from mergedepth.binocular import load_model
    from mergedepth.data import KittiStereo, collate_stereo
    from mergedepth.train import validate, lidar_row_prior
    net = load_model(models[0]).to(device)
    ds = KittiStereo(data, split, hw)
    prior = lidar_row_prior(KittiStereo(data, 'train', hw, need_gt=True))
    dtype = torch.bfloat16 if device.type == 'cuda' else None
    return validate(net, DataLoader(ds, batch_size=16, collate_fn=collate_stereo), device, dtype, 80., prior)

def one_run(spec:dict):
    "Train the runs of `spec['chain']` one after the other (a later one starts from the earlier's networks); write the result."
    import torch
    from mergedepth.train import train
    torch.set_num_threads(2)
    out, res, prev, parts = Path(spec['dir']), [], None, []
    for i, kw in enumerate(spec['chain']):
        kw = dict(kw)
        if kw.pop('from_previous', False): kw['l_model_pth'], kw['r_model_pth'] = prev
        if (j := kw.pop('teacher_from_part', None)) is not None: kw['teacher'] = parts[j][0]   # a binocular stereo.pth
        d = out/f'part{i}'
        t = time.time()
        r = train(spec['data'], image_output_dir=d/'img', model_output_dir=d/'mod', **{**spec['common'], **kw})
        prev = r['models']; parts.append(prev)
        val = {k: v for k, v in r['val'].items()}
        curve = [json.loads(l) for l in (d/'img'/'metrics.jsonl').read_text().splitlines() if '"val"' in l]
        test = score(prev, spec['data'], 'test', (spec['common']['height'], spec['common']['width']), next(r['networks'][0].parameters()).device)
        res.append(dict(args=kw, steps=r['step'], seconds=time.time() - t, val=val, test=test,
                        curve=[(c['step'], round(c['abs_rel'], 4)) for c in curve]))
    (out/'result.json').write_text(json.dumps(res))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=str(ROOT/'benchmarks'/'results'/'recipe'/'recipe.json'))
    ap.add_argument('--budget', type=float, default=420., help='seconds for all training; runs still going then are stopped')
    ap.add_argument('--parallel', type=int, default=5, help='training processes at a time')
    ap.add_argument('--quick', action='store_true', help='tiny data and a few steps: checks the script, measures nothing')
    ap.add_argument('--stage', default='sweep', choices=['sweep', 'evidence', 'binocular', 'distill'],
                    help='sweep: compare variants, then seeds of the best; evidence: the CLI defaults with seeds 0, 1, 2; '
                         'binocular: --arch mono against --arch stereo (phase 1 + 2, phase 2 alone) at the same steps; '
                         'distill: the monocular networks taught by the binocular one (--teacher) against them untaught')
    ap.add_argument('--seeds', type=int, default=3, help='binocular and distill stages: seeds 0 .. N-1')
    ap.add_argument('--only', default='', help='binocular and distill stages: only the runs whose name contains this (e.g. phase1+phase2)')
    ap.add_argument('--scenes', default=None, help='DRIVES,FRAMES of the rendered data (default 8,96)')
    ap.add_argument('--steps', type=int, default=2000, help='steps of a phase-1 run and of phase 2 alone; phase 2 after phase 1: half')
    ap.add_argument('--lr_decay', action='store_true', help="the CLI's default schedule (x0.9 every epoch; 16 steps at --scenes 4,48) "
                    'instead of a constant learning rate')
    ap.add_argument('--set', default='', help='training parameters for every run, as name=value,... (values read as JSON '
                    'where they parse, e.g. pyramid=2,lr=3e-4)')
    ap.add_argument('--set2', default='', help='like --set, for the phase-2 runs only (e.g. lr=3e-4: phase 2 at that rate, '
                    'phase 1 at its own default)')
    ap.add_argument('--run', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run: return one_run(json.loads(Path(a.run).read_text()))
    import torch
    from mergedepth.synth import make_synth
    t0 = time.time()
    work = Path(tempfile.mkdtemp(prefix='recipe_'))
    drives, frames, steps = (1, 12, 4) if a.quick else (*(map(int, a.scenes.split(',')) if a.scenes else (8, 96)), a.steps)
    cores = os.cpu_count() or 2
    make_synth(work/'data', drives=drives, frames=frames, hw=(128, 384), workers=min(cores, 16), progress=False)
    t_render = time.time() - t0
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    per_epoch = max(1, (drives * frames * 4 // 6) // 8)
    ep = lambda n: -(-n // per_epoch)
    common = dict(encoder='resnet18', pretrained=False, height=64, width=192, batch_size=8, workers=2 if dev == 'cuda' else 0,
                  print_every=0, progress=False, tensorboard=False, lr_decay=a.lr_decay, keep_epoch_models=1, device=dev)
    def parse_set(text):
        "name=value,... as a dict (values read as JSON where they parse)"
        r = {}
        for kv in filter(None, text.split(',')):
            k, v = kv.split('=', 1)
            try: r[k] = json.loads(v)
            except json.JSONDecodeError: r[k] = v
        return r
    common.update(parse_set(a.set)); phase2_set = parse_set(a.set2)
    P1 = lambda s, **k: dict(phase=1, epochs=ep(steps), max_steps=steps, seed=s, **k)
    P2 = lambda s, n=steps, **k: dict(phase=2, epochs=ep(n), max_steps=n, seed=s, **{**phase2_set, **k})
    results, t_train0 = {}, time.time()
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    info = dict(machine=(torch.cuda.get_device_name(0) if dev == 'cuda' else platform.processor() or platform.machine()),
                cores=cores, torch=torch.__version__, data=f'{drives} drives x {frames} hard scenes at 128x384 (train/val/test 4:1:1 per drive)',
                trained_at=f"64x192, ResNet-18 from scratch, batch 8, lr decay {'x0.9 per epoch' if a.lr_decay else 'off'}", steps=steps, parallel=a.parallel,
                render_seconds=round(t_render, 1), note='runs share the machine (up to --parallel at a time)',
                **({'set': a.set} if a.set else {}), **({'set2': a.set2} if a.set2 else {}))
    def write():
        out.write_text(json.dumps(dict(info=info, runs=results), indent=1) + '\n')

    def launch(name, chain):
        d = work/name; d.mkdir(parents=True)
        spec = dict(dir=str(d), data=str(work/'data'), common=common, chain=chain)
        (d/'spec.json').write_text(json.dumps(spec))
        env = dict(os.environ, OMP_NUM_THREADS='2', PYTHONUNBUFFERED='1')
        log = open(d/'log.txt', 'w')
        return subprocess.Popen([sys.executable, __file__, '--run', str(d/'spec.json')], stdout=log, stderr=subprocess.STDOUT, env=env)

    def run_all(jobs:dict):
        "Run {name: chain} at most --parallel at a time, within the budget; record each result as it ends."
        todo, live = list(jobs.items()), {}
        while todo or live:
            while todo and len(live) < a.parallel: n, c = todo.pop(0); live[n] = launch(n, c)
            time.sleep(1)
            for n, p in list(live.items()):
                over = time.time() - t_train0 > a.budget
                if p.poll() is None and not over: continue
                if p.poll() is None: p.kill(); p.wait()
                del live[n]
                f = work/n/'result.json'
                if f.is_file(): results[n] = json.loads(f.read_text())
                else:
                    curves = sorted((work/n).glob('part*/img/metrics.jsonl'))
                    results[n] = dict(stopped='budget' if over else f'exit {p.returncode}',
                                      log_tail=(work/n/'log.txt').read_text()[-1500:],
                                      curve=[(r['step'], round(r['abs_rel'], 4)) for c in curves for r in map(json.loads, c.read_text().splitlines()) if r['kind'] == 'val'])
                print(f"{time.time() - t0:6.0f} s  {n}: " + (f"val {results[n][-1]['val']['abs_rel']:.3f} test {results[n][-1]['test']['abs_rel']:.3f} "
                      f"(row prior {results[n][-1]['test'].get('row_abs_rel', float('nan')):.3f})" if isinstance(results[n], list) else results[n]['stopped']), flush=True)
                write()
            if time.time() - t_train0 > a.budget and not live: todo = []
    def final(n):                                           # a run stopped by the budget: its last validation
        r = results.get(n)
        if isinstance(r, list): return r[-1]['val']['abs_rel']
        return r['curve'][-1][1] if r and r.get('curve') else 9.

    if a.stage == 'binocular':                              # the same recipe, one binocular network against two monocular ones
        jobs = {}
        for s in range(a.seeds):
            for arch in ('mono', 'stereo'):
                jobs[f'{arch}_phase2_alone_seed{s}'] = [P2(s, arch=arch)]
                jobs[f'{arch}_phase1+phase2_seed{s}'] = [P1(s, arch=arch), P2(s, steps // 2, from_previous=True, arch=arch)]
        run_all({k: v for k, v in jobs.items() if a.only in k})
        info['seconds'] = round(time.time() - t0, 1); write()
        return print(f"wrote {out} ({info['seconds']} s)")
    if a.stage == 'distill':                                # the binocular network of each seed teaches the monocular ones
        jobs = {}
        for s in range(a.seeds):
            jobs[f'mono_phase2_alone_seed{s}'] = [P2(s)]
            # about the compute of the teacher's training plus the taught run (a taught step also runs the teacher)
            jobs[f'mono_phase2_alone_4x_steps_seed{s}'] = [P2(s, 4 * steps)]
            # part 0: the teacher (phase 2 alone, no lidar); part 1: the monocular networks it teaches, from scratch
            jobs[f'taught_phase2_alone_seed{s}'] = [P2(s, arch='stereo'), P2(s, teacher_from_part=0)]
            jobs[f'mono_phase1+phase2_seed{s}'] = [P1(s), P2(s, steps // 2, from_previous=True)]
            # parts 0, 1: the binocular phase 1 + 2; parts 2, 3: the monocular phase 1, then phase 2 taught by part 1
            jobs[f'taught_phase1+phase2_seed{s}'] = [P1(s, arch='stereo'), P2(s, steps // 2, from_previous=True, arch='stereo'),
                                                     P1(s), P2(s, steps // 2, from_previous=True, teacher_from_part=1)]
        run_all({k: v for k, v in jobs.items() if a.only in k})
        info['seconds'] = round(time.time() - t0, 1); write()
        return print(f"wrote {out} ({info['seconds']} s)")
    if a.stage == 'evidence':                               # the CLI defaults, nothing chosen here
        ev = {}
        for s in (0, 1, 2):
            ev[f'phase1+phase2_seed{s}'] = [P1(s), P2(s, steps // 2, from_previous=True)]
            ev[f'phase2_alone_seed{s}'] = [P2(s)]
        run_all(ev)
        info['seconds'] = round(time.time() - t0, 1); write()
        return print(f"wrote {out} ({info['seconds']} s)")

    # stage 1: phase-1 and phase-2 variants, seed 0
    s1 = {'p1_l1_finest': [P1(0, supervised_kind='l1')], 'p1_l1_all': [P1(0, supervised_kind='l1', sup_all_scales=True)],
          'p1_log_finest': [P1(0, supervised_kind='log')], 'p1_log_all': [P1(0, supervised_kind='log', sup_all_scales=True)],
          'p1_log_all_lr3e-4': [P1(0, supervised_kind='log', sup_all_scales=True, lr=3e-4)],
          'p2s_lr1e-4_pyr0': [P2(0, pyramid=0)], 'p2s_lr1e-4_pyr3': [P2(0, pyramid=3)], 'p2s_lr1e-3_pyr3': [P2(0, lr=1e-3, pyramid=3)]}
    run_all(s1)
    b1 = min((n for n in s1 if n.startswith('p1')), key=final); b2 = min((n for n in s1 if n.startswith('p2s')), key=final)
    info['chosen'] = dict(phase1=b1, phase2_alone=b2)
    # stage 2: phase 2 after the chosen phase 1 (from the networks of stage 1 for seed 0), and seeds 1 and 2 of everything
    reseed = lambda chain, s: [dict(c, seed=s) for c in chain]
    p2_after = P2(0, steps // 2, from_previous=True)           # pyramid None: off when starting from networks
    s2 = {f'{b1}+p2': [dict(p2_after, l_model_pth=str(work/b1/'part0'/'mod'/'left.pth'), r_model_pth=str(work/b1/'part0'/'mod'/'right.pth'), from_previous=False)]}
    for s in (1, 2):
        s2[f'{b1}+p2_seed{s}'] = reseed(s1[b1] + [p2_after], s)   # phase 1 then phase 2, both at this seed
        s2[f'{b2}_seed{s}'] = reseed(s1[b2], s)
    run_all(s2)
    info['seconds'] = round(time.time() - t0, 1); write()
    print(f"wrote {out} ({info['seconds']} s)")

if __name__ == '__main__': main()
