"A rig of one's own: a synthetic data set written in the generic layout (<sequence>/left, right, left_gt, right_gt, calib.json) trains both phases, infers and evaluates with the console scripts, and scores as the same frames in the KITTI layout do."
import json, shutil
import pytest
from conftest import run

SMALL = ['--encoder', 'resnet18', '--pretrained', 'False', '--height', 64, '--width', 192, '--batch_size', 2,
         '--workers', 0, '--print_every', 0, '--tensorboard', 'False', '--device', 'cpu']

def test_generic_layout_end_to_end(synth, tmp_path):
    from mergedepth.data import to_generic_layout
    gen = to_generic_layout(synth, tmp_path/'gen')
    p = run('mergedepth_train', '--data_dir', gen, '--epochs', 1, *SMALL, '--image_output_dir', tmp_path/'i1', '--model_output_dir', tmp_path/'m1')
    assert 'generic (<sequence>/left, right, calib.json) layout' in p.stdout and 'finished: 4 steps' in p.stdout, p.stdout
    nogt = tmp_path/'nogt'; shutil.copytree(gen, nogt)                     # phase 2 needs no lidar
    for d in list(nogt.glob('*/left_gt')) + list(nogt.glob('*/right_gt')): shutil.rmtree(d)
    p = run('mergedepth_keep_training', '--data_dir', nogt, '--epochs', 1, *SMALL, '--l_model_pth', tmp_path/'m1'/'left.pth',
            '--r_model_pth', tmp_path/'m1'/'right.pth', '--val_split', 'none_at_all', '--image_output_dir', tmp_path/'i2', '--model_output_dir', tmp_path/'m2', check=False)
    assert p.returncode == 2 and 'split file not found' in p.stderr, p.stderr[-1500:]        # a named split that is not there
    p = run('mergedepth_keep_training', '--data_dir', nogt, '--epochs', 1, *SMALL, '--l_model_pth', tmp_path/'m1'/'left.pth',
            '--r_model_pth', tmp_path/'m1'/'right.pth', '--image_output_dir', tmp_path/'i2', '--model_output_dir', tmp_path/'m2')
    assert 'finished: 4 steps' in p.stdout and 'note: validation off, the val frames have no lidar' in p.stdout, p.stdout
    models = ['--l_model_pth', tmp_path/'m2'/'left.pth', '--r_model_pth', tmp_path/'m2'/'right.pth', '--device', 'cpu']
    p = run('mergedepth_infer', *models, '--input_dir', gen, '--output_dir', tmp_path/'pg', '--format', 'png,confidence,ply')
    assert 'generic layout, 2 sequence(s)' in p.stdout and 'wrote depth for 12 stereo pair(s)' in p.stdout, p.stdout
    assert len(list((tmp_path/'pg'/'right').glob('*/*.ply'))) == 12                  # each sequence's calib.json found
    run('mergedepth_infer', *models, '--input_dir', synth, '--output_dir', tmp_path/'pk')
    run('mergedepth_eval', '--pred_dir', tmp_path/'pg'/'left', '--gt_dir', gen, '--crop', 'none', '--output', tmp_path/'g.json')
    run('mergedepth_eval', '--pred_dir', tmp_path/'pk'/'left', '--gt_dir', synth/'left_gt', '--crop', 'none', '--output', tmp_path/'k.json')
    g, k = (json.loads((tmp_path/f).read_text()) for f in ('g.json', 'k.json'))
    assert g['n_images'] == k['n_images'] == 12 and g['mean'] == pytest.approx(k['mean'], rel=1e-9), (g['mean'], k['mean'])
    run('mergedepth_eval', '--pred_dir', tmp_path/'pg'/'right', '--gt_dir', gen, '--view', 'right', '--crop', 'none', '--output', tmp_path/'r.json')
    assert json.loads((tmp_path/'r.json').read_text())['n_images'] == 12

def test_stereo_video_in_depth_video_out(synth, tmp_path):
    "A side-by-side stereo video of 10 frames in, a depth video of 10 frames out (left image | depth), per-frame PNGs on request."
    cv2 = pytest.importorskip('cv2')
    import numpy as np, torch
    from PIL import Image
    from mergedepth.model import DepthNet, save_depthnet
    torch.manual_seed(0)
    for side in ('left', 'right'): save_depthnet(DepthNet('resnet18', pretrained=False), tmp_path/f'{side}.pth', hw=(64, 192))
    L = [np.asarray(Image.open(p)) for p in sorted((synth/'left_imgs').rglob('*.png'))][:10]
    R = [np.asarray(Image.open(p)) for p in sorted((synth/'right_imgs').rglob('*.png'))][:10]
    w = cv2.VideoWriter(str(tmp_path/'drive.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 10, (2 * L[0].shape[1], L[0].shape[0]))
    for l, r in zip(L, R): w.write(np.ascontiguousarray(np.concatenate([l, r], 1)[..., ::-1]))
    w.release()
    p = run('mergedepth_infer', '--l_model_pth', tmp_path/'left.pth', '--r_model_pth', tmp_path/'right.pth', '--video', tmp_path/'drive.mp4',
            '--output_dir', tmp_path/'o', '--per_frame', 'True', '--format', 'png', '--device', 'cpu')
    assert 'frames/s' in p.stdout, p.stdout
    cap, n = cv2.VideoCapture(str(tmp_path/'o'/'drive_depth.mp4')), 0
    while cap.read()[0]: n += 1
    assert n == 10 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 2 * L[0].shape[1], n
    assert len(list((tmp_path/'o'/'left'/'drive').glob('*.png'))) == 10 and len(list((tmp_path/'o'/'right'/'drive').glob('*.png'))) == 10
