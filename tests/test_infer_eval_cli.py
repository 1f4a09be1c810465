"mergedepth_infer (stereo and the seed's one-view form) and mergedepth_eval end to end on synthetic data."
import json, shutil
from pathlib import Path
import numpy as np
import pytest, torch
from conftest import run
from mergedepth.model import DepthNet, save_depthnet
from mergedepth.data import read_depth, read_split
from mergedepth.evaluate import compute_depth_metrics

@pytest.fixture(scope='module')
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp('models'); torch.manual_seed(0)
    for side in ('left', 'right'): save_depthnet(DepthNet('resnet18', pretrained=False, max_depth=80.), d/f'{side}.pth', hw=(64, 192))
    return d

def test_stereo_infer_then_eval(synth, models, tmp_path):
    out = tmp_path/'pred'
    p = run('mergedepth_infer', '--l_model_pth', models/'left.pth', '--r_model_pth', models/'right.pth', '--input_dir', synth,
            '--output_dir', out, '--format', 'png,npy,confidence', '--device', 'cpu')
    assert 'wrote depth for 12 stereo pair(s)' in p.stdout, p.stdout
    f = Path('2000_01_01_drive_0001_sync/0000000000')
    png, npy = read_depth(out/'left'/f.with_suffix('.png')), read_depth(out/'left'/f.with_suffix('.npy'))
    assert png.shape == (64, 192) and np.abs(png - npy).max() <= 0.5 / 256 + 1e-5          # metres x 256, rounded
    assert (out/'right'/f.with_suffix('.png')).is_file() and (out/'left'/(str(f) + '_confidence.png')).is_file()
    p = run('mergedepth_eval', '--pred_dir', out/'left', '--gt_dir', synth/'left_gt', '--crop', 'none', '--output', tmp_path/'m.json')
    res = json.loads((tmp_path/'m.json').read_text())
    assert res['n_images'] == 12 and 'abs_rel@50' in res['mean'] and '50m' in p.stdout
    direct = np.mean([compute_depth_metrics(read_depth(out/'left'/f'{d}/{fr}.png'), read_depth(synth/'left_gt'/f'{d}/{fr}.npy'), crop=None)['abs_rel']
                      for d, fr in [(p_.parent.name, p_.stem) for p_ in sorted((synth/'left_gt').rglob('*.npy'))]])
    assert abs(res['mean']['abs_rel'] - direct) < 1e-6
    assert len((tmp_path/'m.csv').read_text().splitlines()) == 13
    p = run('mergedepth_eval', '--pred_dir', out/'left', '--gt_dir', synth/'left_gt', '--split', synth/'splits'/'test.txt', '--output', tmp_path/'t.json')
    assert json.loads((tmp_path/'t.json').read_text())['n_images'] == len(read_split(synth/'splits'/'test.txt'))

def test_seed_one_view_command_and_corrupt_image(synth, models, tmp_path):
    imgs = tmp_path/'imgs'; shutil.copytree(synth/'left_imgs', imgs)
    bad = imgs/'2000_01_01_drive_0002_sync'/'0000000003.png'; bad.write_bytes(b'not an image')
    p = run('mergedepth_infer', '--model_pth', models/'left.pth', '--input_dir', imgs, '--output_dir', tmp_path/'o', '--device', 'cpu', check=False)
    assert p.returncode == 1 and '0000000003.png' in p.stderr and 'skipped 1 file' in p.stderr, p.stderr
    assert len(list((tmp_path/'o').rglob('*.png'))) == 11                                  # everything else was written

def test_missing_prediction_is_named(synth, models, tmp_path):
    out = tmp_path/'pred'; (out/'2000_01_01_drive_0001_sync').mkdir(parents=True)
    np.save(out/'2000_01_01_drive_0001_sync'/'0000000000.npy', np.full((64, 192), 10, np.float32))
    p = run('mergedepth_eval', '--pred_dir', out, '--gt_dir', synth/'left_gt', '--output', tmp_path/'m.json', check=False)
    assert p.returncode != 0 and '2000_01_01_drive_0001_sync/0000000001' in p.stderr
    p = run('mergedepth_eval', '--pred_dir', out, '--gt_dir', synth/'left_gt', '--allow_missing', 'True', '--output', tmp_path/'m.json')
    assert '11 ground-truth frame(s) without prediction skipped' in p.stdout

def test_infer_refuses_bad_arguments_in_one_line(synth, models, tmp_path):
    "Bad input to mergedepth_infer: one line on stderr naming what is wrong, exit code 2, no traceback, nothing written."
    M, imgs = models/'left.pth', synth/'left_imgs'/'2000_01_01_drive_0001_sync'
    bad_cal = tmp_path/'cal'; bad_cal.mkdir(); (bad_cal/'calib_cam_to_cam.txt').write_text('P_rect_02: 1 0 0\n')
    cases = [(['--model_pth', tmp_path/'none.pth', '--input_dir', imgs], 'none.pth'),
             (['--model_pth', M, '--input_dir', tmp_path/'nowhere'], 'nowhere'),
             (['--model_pth', M, '--input_dir', imgs, '--height', 70, '--width', 192], 'multiples of 32'),
             (['--model_pth', M, '--input_dir', imgs, '--height', 64], 'both --height and --width'),
             (['--model_pth', M, '--input_dir', imgs, '--batch_size', 0], '--batch_size'),
             (['--l_model_pth', M, '--r_model_pth', M, '--input_dir', tmp_path], 'neither a KITTI raw drive'),
             (['--l_model_pth', M, '--r_model_pth', M, '--input_dir', synth, '--format', 'ply', '--calib_dir', bad_cal], str(bad_cal))]
    for i, (args, says) in enumerate(cases):
        out = tmp_path/f'o{i}'
        p = run('mergedepth_infer', *args, '--output_dir', out, '--device', 'cpu', check=False)
        msg = [l[l.index('mergedepth_infer:'):] for l in p.stderr.splitlines() if 'mergedepth_infer:' in l]   # (a progress bar may precede it)
        assert p.returncode == 2 and len(msg) == 1 and says in msg[0] and 'Traceback' not in p.stderr, (args, p.returncode, p.stderr)
    # the output folder is the input folder: refused before anything is written, the images stay
    own = tmp_path/'own'; shutil.copytree(imgs, own)
    before = {f.name: f.read_bytes() for f in own.iterdir()}
    p = run('mergedepth_infer', '--model_pth', M, '--input_dir', own, '--output_dir', own, '--device', 'cpu', check=False)
    assert p.returncode == 2 and 'replace the images' in p.stderr, p.stderr
    assert {f.name: f.read_bytes() for f in own.iterdir()} == before

def test_eval_refuses_another_aspect_ratio(synth, tmp_path):
    "A 100x100 prediction against 64x192 ground truth is refused with both file names; --stretch True scores it anyway."
    from mergedepth.data import write_depth
    pred = tmp_path/'pred'/'2000_01_01_drive_0001_sync'/'0000000000.png'; pred.parent.mkdir(parents=True)
    write_depth(pred, np.full((100, 100), 10., np.float32))
    gt = tmp_path/'gt'/'2000_01_01_drive_0001_sync'; gt.mkdir(parents=True); shutil.copy(synth/'left_gt'/'2000_01_01_drive_0001_sync'/'0000000000.npy', gt)
    args = ['mergedepth_eval', '--pred_dir', tmp_path/'pred', '--gt_dir', tmp_path/'gt', '--crop', 'none', '--output', tmp_path/'m.json']
    p = run(*args, check=False)
    assert p.returncode != 0 and '0000000000.png is 100x100' in p.stderr and '0000000000.npy is 192x64' in p.stderr, p.stderr
    run(*args, '--stretch', 'True')
    assert json.loads((tmp_path/'m.json').read_text())['n_images'] == 1
