"""The same seeds give the same losses as before `TrainConfig` and `Objective` (issue on the house): phase 1, phase 2 from
the phase-1 networks and phase 2 from scratch, two steps each on a tiny synthetic set, fp32 on the CPU. The reference,
`data/losses_a944c55.json`, was written by commit a944c55's `train` (the keyword arguments of before) with this very script."""
import json, math
from pathlib import Path
import pytest

REF = Path(__file__).parent/'data'/'losses_a944c55.json'

def run_three(tmp):
    from mergedepth.synth import make_synth
    from mergedepth.train import train
    make_synth(tmp/'data', drives=1, frames=6, hw=(64, 192), seed=0, progress=False)
    kw = dict(epochs=1, max_steps=3, batch_size=2, encoder='resnet18', pretrained=False, height=64, width=192, workers=0,
              print_every=0, tensorboard=False, progress=False, device='cpu', precision='fp32')
    r1 = train(tmp/'data', phase=1, image_output_dir=tmp/'i1', model_output_dir=tmp/'m1', **kw)
    train(tmp/'data', phase=2, l_model_pth=r1['models'][0], r_model_pth=r1['models'][1], image_output_dir=tmp/'i2',
          model_output_dir=tmp/'m2', **kw)
    train(tmp/'data', phase=2, image_output_dir=tmp/'i3', model_output_dir=tmp/'m3', **kw)
    out = {}
    for k, d in (('phase1', 'i1'), ('phase2', 'i2'), ('phase2_scratch', 'i3')):
        out[k] = [json.loads(l) for l in (tmp/d/'metrics.jsonl').read_text().splitlines() if '"kind": "step"' in l]
        for r in out[k]: r.pop('sec', None)
    return out

# Relative tolerance per run. Phase 1 and phase 2 from scratch start from seeded weights: one AMD EPYC agreed with the
# reference to 8e-5 at both steps. Phase 2 from the phase-1 networks starts from weights that three Adam steps (sign-like
# at first) and the fp16 model files made sensitive to the last bits: on that one machine, 1 and 2 torch threads alone
# moved its losses by up to 4.4e-3 at its first step and 1.9e-2 at its second, so 1e-3 held only on the machine that
# wrote the reference.
TOL = {'phase1': 1e-3, 'phase2_scratch': 1e-3, 'phase2': 5e-2}

def test_losses_as_before(tmp_path):
    ref, got = json.loads(REF.read_text()), run_three(tmp_path)
    assert got.keys() == ref.keys()
    for k in ref:
        assert len(got[k]) == len(ref[k]) == 2, (k, len(got[k]))
        for g, r in zip(got[k], ref[k]):
            assert g.keys() == r.keys(), (k, sorted(g), sorted(r))          # the same named parts in the log
            for n, v in r.items():
                if isinstance(v, float): assert math.isclose(g[n], v, rel_tol=TOL[k]), (k, g['step'], n, g[n], v)
                else: assert g[n] == v, (k, n, g[n], v)
