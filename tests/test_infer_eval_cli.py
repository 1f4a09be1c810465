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
