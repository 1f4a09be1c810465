"Both training CLIs end to end, kill -9 and resume, signals, torchrun on two CPU processes and two rendezvous nodes, a failing rank, fp16, and errors that name files."
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pytest, torch
from conftest import run, ROOT

SMALL = ['--encoder', 'resnet18', '--pretrained', 'False', '--height', 64, '--width', 192, '--batch_size', 2,
         '--workers', 0, '--print_every', 3, '--tensorboard', 'False']

def test_phase1_then_phase2(synth, tmp_path):
    p = run('mergedepth_train', '--data_dir', synth, '--epochs', 2, '--lr', 1e-3, '--alpha', 1, '--gamma', .5, *SMALL,
            '--image_output_dir', tmp_path/'i1', '--model_output_dir', tmp_path/'m1')
    assert 'finished: 8 steps' in p.stdout, p.stdout                  # 8 training frames / batch 2 x 2 epochs
    for f in ('left_00.pth', 'right_01.pth', 'left.pth', 'right.pth', 'checkpoint.pt'): assert (tmp_path/'m1'/f).is_file(), f
    log = [json.loads(l) for l in (tmp_path/'i1'/'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in log if r['kind'] == 'step'] == list(range(1, 9))
    assert any(r['kind'] == 'val' and 'abs_rel' in r for r in log)
    assert (tmp_path/'i1'/'curves.png').is_file() and (tmp_path/'i1'/'sample_000003.png').is_file()
    p = run('mergedepth_keep_training', '--data_dir', synth, '--epochs', 1, '--beta', .1, '--gamma', 1, '--lr', 1e-5, *SMALL,
            '--l_model_pth', tmp_path/'m1'/'left.pth', '--r_model_pth', tmp_path/'m1'/'right.pth',
            '--image_output_dir', tmp_path/'i2', '--model_output_dir', tmp_path/'m2')
    assert 'finished: 4 steps' in p.stdout, p.stdout
    rec = [json.loads(l) for l in (tmp_path/'i2'/'metrics.jsonl').read_text().splitlines() if '"step"' in l][0]
    assert 'rec_L' in rec and 'con_R' in rec and 'sup_L' not in rec
    a, b = torch.load(tmp_path/'m1'/'left.pth')['state_dict'], torch.load(tmp_path/'m2'/'left.pth')['state_dict']
    assert any(not torch.equal(a[k], b[k]) for k in a)                # phase 2 changed the phase-1 weights

def test_kill9_then_resume(synth, tmp_path):
    args = ['mergedepth_train', '--data_dir', synth, '--epochs', 3, *SMALL, '--max_steps', 10, '--checkpoint_every', 1,
            '--image_output_dir', tmp_path/'i', '--model_output_dir', tmp_path/'m']
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'MPLBACKEND': 'Agg'}
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    ck = tmp_path/'m'/'checkpoint.pt'
    t0 = time.time()
    while time.time() - t0 < 300:
        if ck.is_file():
            try:
                if torch.load(ck, weights_only=False)['step'] >= 3: break
            except Exception: pass                                      # being renamed right now
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    killed_at = torch.load(ck, weights_only=False)['step']
    assert 3 <= killed_at < 10, f"killed too late ({killed_at})"
    p = run(*args, '--resume', 'True')
    assert f'resuming from' in p.stdout and 'finished: 10 steps' in p.stdout, p.stdout
    assert torch.load(ck, weights_only=False)['step'] == 10

HELPER = """
import sys, torch
from mergedepth.train import train, dist_info
data, out = sys.argv[1], sys.argv[2]
res = train(data, epochs=2, batch_size=2, encoder='resnet18', pretrained=False, height=64, width=192, workers=0,
            print_every=0, progress=False, tensorboard=False, image_output_dir=out + '/img', model_output_dir=out + '/mod')
torch.save(dict(step=res['step'], left=res['networks'][0].state_dict(), right=res['networks'][1].state_dict()),
           out + f'/rank{dist_info()[0]}.pt')
"""

def test_torchrun_two_cpu_processes_identical_weights(synth, tmp_path):
    "train() under torchrun with gloo: both ranks take the same steps and end with the same parameters."
    helper = tmp_path/'ddp_helper.py'; helper.write_text(HELPER)
    run(sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', 2, helper, synth, tmp_path, timeout=900)
    r0, r1 = torch.load(tmp_path/'rank0.pt'), torch.load(tmp_path/'rank1.pt')
    assert r0['step'] == r1['step'] == 4        # 8 training frames over 2 processes, batch 2: 2 steps an epoch
    for side in ('left', 'right'):
        params = [k for k in r0[side] if 'running' not in k and 'num_batches' not in k]
        assert params and all(torch.equal(r0[side][k], r1[side][k]) for k in params), side

def test_torchrun_cli(synth, tmp_path):
    "The console script itself under torchrun --nproc_per_node 2 on CPU."
    p = run(sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', 2, shutil.which('mergedepth_train'),
            '--data_dir', synth, '--epochs', 2, *SMALL, '--image_output_dir', tmp_path/'i', '--model_output_dir', tmp_path/'m', timeout=900)
    assert 'finished: 4 steps' in p.stdout, p.stdout + p.stderr
    assert torch.load(tmp_path/'m'/'checkpoint.pt', weights_only=False)['step'] == 4
    assert len(torch.load(tmp_path/'m'/'checkpoint.pt', weights_only=False)['rng']) == 2     # both ranks' generators

def test_errors_name_the_files(synth, tmp_path):
    data = tmp_path/'data'; shutil.copytree(synth, data)
    drive = '2000_01_01_drive_0001_sync'
    (data/'right_imgs'/drive/'0000000001.png').unlink()
    p = run('mergedepth_train', '--data_dir', data, *SMALL, '--image_output_dir', tmp_path/'i', '--model_output_dir', tmp_path/'m', check=False)
    assert p.returncode != 0 and f'{drive}/0000000001: no right' in p.stderr, p.stderr
    shutil.copy(synth/'right_imgs'/drive/'0000000001.png', data/'right_imgs'/drive/'0000000001.png')
    png = data/'left_imgs'/drive/'0000000002.png'
    png.write_bytes(png.read_bytes()[:200])                              # truncated image
    args = ['mergedepth_train', '--data_dir', data, *SMALL, '--workers', 1, '--epochs', 1, '--image_output_dir', tmp_path/'i', '--model_output_dir', tmp_path/'m']
    p = run(*args, check=False)
    assert p.returncode == 2 and 'Traceback' not in p.stderr, p.stderr[-2000:]
    assert 'mergedepth_train: error: cannot read image' in p.stderr and '0000000002.png' in p.stderr, p.stderr[-2000:]
    assert (tmp_path/'m'/'checkpoint.pt').is_file()                     # the finished steps are kept
    p = run(*args, '--resume', 'True', '--skip_unreadable', 'True')
    assert 'finished: 4 steps' in p.stdout and 'skipped 1 unreadable frame(s)' in p.stderr, p.stdout + p.stderr[-2000:]
    p = run(*args[:-4], '--check_data', 'True', '--image_output_dir', tmp_path/'i2', '--model_output_dir', tmp_path/'m2', check=False)
    assert p.returncode == 2 and '1 frame(s) cannot be used' in p.stderr and '0000000002' in p.stderr, p.stderr[-2000:]
    assert not (tmp_path/'m2'/'checkpoint.pt').exists()                 # refused before the first step

@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['ctrl-c', 'sigterm'])
def test_signal_stops_at_a_step_boundary(synth, tmp_path, sig):
    """Ctrl-C from a terminal (SIGINT to the whole process group, the loader worker included) or SIGTERM: the step finishes,
    a checkpoint is saved, exit 130 without a traceback; the resumed run ends with exactly the uninterrupted run's tensors."""
    base = ['mergedepth_train', '--data_dir', synth, '--epochs', 3, *SMALL, '--workers', 1, '--print_every', 0]
    run(*base, '--image_output_dir', tmp_path/'i1', '--model_output_dir', tmp_path/'m1')
    args = [*base, '--image_output_dir', tmp_path/'i2', '--model_output_dir', tmp_path/'m2']
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'MPLBACKEND': 'Agg'}
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, start_new_session=True)
    log = tmp_path/'i2'/'metrics.jsonl'
    t0 = time.time()
    while time.time() - t0 < 300 and not (log.is_file() and log.read_text().count('"kind": "step"') >= 2): time.sleep(0.05)
    os.killpg(proc.pid, sig)                                        # the whole group, as a terminal does
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out[-2000:]
    assert 'Traceback' not in out and '--resume True' in out, out[-3000:]
    ck = torch.load(tmp_path/'m2'/'checkpoint.pt', weights_only=False)
    assert 2 <= ck['step'] < 12, ck['step']
    p = run(*args, '--resume', 'True')
    assert 'finished: 12 steps' in p.stdout, p.stdout
    c1, c2 = (torch.load(tmp_path/d/'checkpoint.pt', weights_only=False) for d in ('m1', 'm2'))
    differ = [(s, k) for s in ('left', 'right') for k in c1[s] if not torch.equal(c1[s][k], c2[s][k])]
    assert not differ, f"{len(differ)} tensors differ after resume, e.g. {differ[:3]}"
    val = lambda d: [json.loads(l)['abs_rel'] for l in (tmp_path/d/'metrics.jsonl').read_text().splitlines() if '"kind": "val"' in l]
    assert val('i1') == val('i2') and len(val('i1')) == 3, (val('i1'), val('i2'))

def test_train_in_a_script_leaves_sigterm_alone(synth, tmp_path):
    "train() called from Python (a notebook, a test runner under `timeout`) installs no handler: SIGTERM ends it at once."
    script = (f"from mergedepth.train import train\n"
              f"train({str(synth)!r}, epochs=50, encoder='resnet18', pretrained=False, height=64, width=192, batch_size=2, workers=0,"
              f" device='cpu', print_every=0, progress=False, tensorboard=False, image_output_dir={str(tmp_path/'i')!r}, model_output_dir={str(tmp_path/'m')!r})\n")
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'MPLBACKEND': 'Agg'}
    proc = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    log = tmp_path/'i'/'metrics.jsonl'
    t0 = time.time()
    while time.time() - t0 < 300 and not (log.is_file() and log.read_text().count('"kind": "step"') >= 2): time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, out[-2000:])

def test_non_finite_losses_stop_with_a_checkpoint(synth, tmp_path):
    data = tmp_path/'data'; shutil.copytree(synth, data)
    for f in (data/'left_gt').rglob('*.npy'):                      # every supervised loss becomes inf
        g = np.load(f); g[g > 0] = np.inf; np.save(f, g)
    from mergedepth.train import train
    with pytest.raises(RuntimeError, match='3 non-finite losses in a row'):
        train(data, epochs=1, batch_size=2, encoder='resnet18', pretrained=False, height=64, width=192, workers=0, print_every=0,
              progress=False, tensorboard=False, max_bad_steps=3, image_output_dir=tmp_path/'i', model_output_dir=tmp_path/'m')
    ck = torch.load(tmp_path/'m'/'checkpoint.pt', weights_only=False)
    assert ck['step'] == 0 and ck['non_finite_steps'] == 3

FAILING = """
import os, sys
import mergedepth.train as T
from mergedepth.train import train
calls = [0]
orig = T.forward_pair                                   # what every training step calls first
def failing(*a, **k):
    calls[0] += 1
    if os.environ['RANK'] == '1' and calls[0] == 3: raise MemoryError('simulated failure of rank 1 at its third step')
    return orig(*a, **k)
T.forward_pair = failing
data, out = sys.argv[1], sys.argv[2]
train(data, epochs=20, batch_size=2, encoder='resnet18', pretrained=False, height=64, width=192, workers=0, print_every=0,
      checkpoint_every=1, progress=False, tensorboard=False, image_output_dir=out + '/img', model_output_dir=out + '/mod')
"""

def test_a_failing_rank_ends_the_job(synth, tmp_path):
    "One rank dies mid-training: torchrun stops the other one and exits non-zero instead of hanging in a collective."
    helper = tmp_path/'failing.py'; helper.write_text(FAILING)
    t0 = time.time()
    p = run(sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', 2, helper, synth, tmp_path,
            check=False, timeout=300)
    assert p.returncode != 0, p.stdout[-2000:]
    assert 'simulated failure of rank 1' in p.stdout + p.stderr, p.stderr[-3000:]
    assert time.time() - t0 < 240, f"the job took {time.time() - t0:.0f} s to end"
    ck = torch.load(tmp_path/'mod'/'checkpoint.pt', weights_only=False)
    assert ck['step'] == 2, ck['step']                   # rank 0's last complete step before rank 1 died

def test_two_nodes_rendezvous(synth, tmp_path):
    "Two torchrun launchers meet through a c10d rendezvous (as two machines would) and train as one job of 2 ranks."
    import socket
    with socket.socket() as s_: s_.bind(('127.0.0.1', 0)); port = s_.getsockname()[1]
    helper = tmp_path/'ddp_helper.py'; helper.write_text(HELPER)
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '2', '--nproc_per_node', '1', '--rdzv_backend', 'c10d',
           '--rdzv_endpoint', f'127.0.0.1:{port}', '--rdzv_id', 'mergedepth-test', str(helper), str(synth), str(tmp_path)]
    nodes = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) for _ in range(2)]
    outs = [n.communicate(timeout=900)[0] for n in nodes]
    assert all(n.returncode == 0 for n in nodes), '\n'.join(o[-2000:] for o in outs)
    r0, r1 = torch.load(tmp_path/'rank0.pt'), torch.load(tmp_path/'rank1.pt')
    assert r0['step'] == r1['step'] == 4
    for side in ('left', 'right'):
        params = [k for k in r0[side] if 'running' not in k and 'num_batches' not in k]
        assert all(torch.equal(r0[side][k], r1[side][k]) for k in params), side

def test_fp16_trains_with_loss_scaling(synth, tmp_path):
    "--precision fp16: autocast in float16 with a GradScaler whose state is checkpointed (and restored on resume)."
    from mergedepth.train import train
    kw = dict(epochs=1, batch_size=2, encoder='resnet18', pretrained=False, height=64, width=192, workers=0, print_every=0,
              progress=False, tensorboard=False, device='cpu', precision='fp16', image_output_dir=tmp_path/'i', model_output_dir=tmp_path/'m')
    res = train(synth, max_steps=2, **kw)
    ck = torch.load(tmp_path/'m'/'checkpoint.pt', weights_only=False)
    assert res['step'] == 2 and ck['scaler'].get('scale', 0) > 0, ck['scaler']          # a disabled scaler saves {}
    assert all(torch.isfinite(v).all() for v in ck['left'].values() if v.is_floating_point())
    res = train(synth, resume=True, **kw)
    assert res['step'] == 4 and np.isfinite(res['last']['loss'])

def test_sync_bn_on_cpu_is_refused(synth, tmp_path):
    from mergedepth.train import train
    with pytest.raises(ValueError, match='SyncBatchNorm does not run on the CPU'):
        train(synth, device='cpu', sync_bn=True, encoder='resnet18', pretrained=False, image_output_dir=tmp_path/'i', model_output_dir=tmp_path/'m')

RECIPE = {1: dict(lr=1e-3, alpha=1., gamma=.5, smooth=1e-3, supervised_kind="log"),
          2: dict(lr=1e-4, beta=1., gamma=.1, smooth=1e-3, supervised_kind="log", pyramid=3)}   # from scratch: coarse-to-fine

def test_defaults_are_the_validated_recipe(synth, tmp_path):
    "The CLIs and the Python API train with the same defaults, the ones 04_train's evidence used (the seed's drifted apart)."
    from mergedepth.train import train
    one = ['--max_steps', 1, *SMALL]
    run('mergedepth_train', '--data_dir', synth, *one, '--image_output_dir', tmp_path/'i1', '--model_output_dir', tmp_path/'m1')
    run('mergedepth_keep_training', '--data_dir', synth, *one, '--image_output_dir', tmp_path/'i2', '--model_output_dir', tmp_path/'m2')
    kw = dict(max_steps=1, encoder='resnet18', pretrained=False, height=64, width=192, batch_size=2, workers=0, print_every=0,
              tensorboard=False, progress=False)
    for phase, d in ((1, 'm1'), (2, 'm2')):
        cli = torch.load(tmp_path/d/'checkpoint.pt', weights_only=False)['args']
        train(synth, phase=phase, image_output_dir=tmp_path/f'pi{phase}', model_output_dir=tmp_path/f'pm{phase}', **kw)
        api = torch.load(tmp_path/f'pm{phase}'/'checkpoint.pt', weights_only=False)['args']
        for k, v in RECIPE[phase].items(): assert cli[k] == v and api[k] == v, (phase, k, cli[k], api[k], v)
    # a binocular network's phase 2 from scratch: 3e-4 (11_binocular's measurement), from both entry points
    run('mergedepth_keep_training', '--data_dir', synth, *one, '--arch', 'stereo', '--image_output_dir', tmp_path/'i3',
        '--model_output_dir', tmp_path/'m3')
    train(synth, phase=2, arch='stereo', image_output_dir=tmp_path/'pi3', model_output_dir=tmp_path/'pm3', **kw)
    for d in ('m3', 'pm3'): assert torch.load(tmp_path/d/'checkpoint.pt', weights_only=False)['args']['lr'] == 3e-4, d

def test_bad_training_arguments_are_one_line(synth, tmp_path):
    "--batch_size 0, a size that is not a multiple of 32, and --resume with nothing to resume: one line, exit 2."
    base = ['mergedepth_train', '--data_dir', synth, '--encoder', 'resnet18', '--pretrained', 'False', '--device', 'cpu',
            '--image_output_dir', tmp_path/'i', '--model_output_dir', tmp_path/'m']
    for extra, says in ((['--batch_size', 0], '--batch_size must be at least 1'), (['--height', 70, '--width', 192], 'multiples of 32'),
                        (['--height', 64, '--width', 192, '--resume', 'True'], 'nothing to resume')):
        p = run(*base, *extra, check=False)
        assert p.returncode == 2 and says in p.stderr and 'Traceback' not in p.stderr, (extra, p.returncode, p.stderr[-2000:])
        assert not (tmp_path/'m'/'checkpoint.pt').exists()

def test_one_run_per_folder(synth, tmp_path):
    "Training into a run's folders is refused (one line, exit 2, the files named); --overwrite True replaces it; --debug shows the trace."
    args = ['mergedepth_train', '--data_dir', synth, '--max_steps', 1, *SMALL, '--image_output_dir', tmp_path/'i', '--model_output_dir', tmp_path/'m']
    run(*args)
    p = run(*args, check=False)
    assert p.returncode == 2 and 'hold another run' in p.stderr and str(tmp_path/'m'/'checkpoint.pt') in p.stderr and 'Traceback' not in p.stderr, p.stderr
    run(*args, '--overwrite', 'True')
    steps = [json.loads(l)['step'] for l in (tmp_path/'i'/'metrics.jsonl').read_text().splitlines() if '"kind": "step"' in l]
    assert steps == [1], steps                                           # not two runs' rows
    p = run(*args, '--debug', 'True', check=False)
    assert p.returncode != 0 and 'Traceback' in p.stderr and 'FileExistsError' in p.stderr, p.stderr[-1500:]

def test_phase2_trains_at_the_phase1_size(synth, tmp_path):
    "mergedepth_keep_training on 64x192 phase-1 models, with the seed's flags and no --height/--width, trains at 64x192."
    from mergedepth.model import DepthNet, save_depthnet
    for side in ('left', 'right'): save_depthnet(DepthNet('resnet18', pretrained=False), tmp_path/f'{side}.pth', hw=(64, 192))
    p = run('mergedepth_keep_training', '--data_dir', synth, '--l_model_pth', tmp_path/'left.pth', '--r_model_pth', tmp_path/'right.pth',
            '--beta', .1, '--gamma', 1, '--lr', 1e-5, '--max_steps', 1, '--batch_size', 2, '--workers', 0, '--pretrained', 'False',
            '--encoder', 'resnet18', '--tensorboard', 'False', '--image_output_dir', tmp_path/'i', '--model_output_dir', tmp_path/'m')
    args = torch.load(tmp_path/'m'/'checkpoint.pt', weights_only=False)['args']
    assert (args['height'], args['width']) == (64, 192) and 'training at 192x64' in p.stdout, (args['height'], args['width'], p.stdout)

def test_help_says_what_each_flag_is():
    "Both training commands list every TrainConfig field as a flag with its comment as help and the preset's default."
    from dataclasses import fields
    from mergedepth.train import TrainConfig, field_docs
    docs = field_docs(TrainConfig)
    assert len(docs) == len(fields(TrainConfig)), sorted({f.name for f in fields(TrainConfig)} - set(docs))
    for prog, lr in (('mergedepth_train', '0.001'), ('mergedepth_keep_training', 'None')):   # None: by --arch and start
        out = ' '.join(run(prog, '--help').stdout.split())                  # argparse wraps the help text
        assert ' '.join(docs['lr'].split()) in out and ' '.join(docs['beta'].split()) in out, out[:2000]
        assert f"(default: {lr})" in out, out[:2000]
