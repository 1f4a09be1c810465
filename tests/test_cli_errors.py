"Every console script checks its arguments first: one line `<script>: error: ...` on stderr, exit code 2, no traceback (--debug True shows it); ONNX export from mergedepth_infer."
import shutil
import numpy as np
import pytest, torch
from conftest import run
from mergedepth.model import DepthNet, save_depthnet

def one_line(p, script, says):
    "The run failed with exit 2 and exactly one error line of `script` that contains `says`, without a traceback."
    lines = [l[l.index(f'{script}: error:'):] for l in p.stderr.splitlines() if f'{script}: error:' in l]
    return p.returncode == 2 and len(lines) == 1 and says in lines[0] and 'Traceback' not in p.stderr

@pytest.fixture(scope='module')
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp('model'); torch.manual_seed(0)
    for side in ('left', 'right'): save_depthnet(DepthNet('resnet18', pretrained=False), d/f'{side}.pth', hw=(64, 192))
    return d

def test_synth_prepare_eval_quickstart_fit_arguments(synth, kitti_sample, tmp_path):
    cases = [
        (['mergedepth_synth', '--output_dir', tmp_path/'s', '--frames', 0], '--frames must be at least 1'),
        (['mergedepth_synth'], '--output_dir is required'),
        (['mergedepth_prepare', '--raw_dir', tmp_path/'nowhere', '--output_dir', tmp_path/'p'], 'no such folder'),
        (['mergedepth_prepare', '--raw_dir', synth, '--output_dir', tmp_path/'p', '--workers', -1], '--workers must be 0 or more'),
        (['mergedepth_prepare', '--raw_dir', synth, '--output_dir', tmp_path/'p', '--gt_format', 'tiff'], "gt_format should be 'npy' or 'png'"),
        (['mergedepth_eval', '--pred_dir', tmp_path/'nowhere', '--gt_dir', synth/'left_gt'], '--pred_dir: no such folder'),
        (['mergedepth_eval', '--pred_dir', synth/'left_gt', '--gt_dir', synth/'left_gt', '--crop', 'middle'], '--crop should be one of'),
        (['mergedepth_eval', '--pred_dir', synth/'left_gt', '--gt_dir', synth/'left_gt', '--min_depth', 90], 'need 0 <= --min_depth < --max_depth'),
        (['mergedepth_quickstart', '--output_dir', tmp_path/'q', '--height', 70], 'multiples of 32'),
        (['mergedepth_quickstart', '--output_dir', tmp_path/'q', '--frames', 3], '--frames must be at least 6'),
        (['mergedepth_fit', '--left_image', tmp_path/'none.png', '--right_image', tmp_path/'none.png', '--calib', kitti_sample/'2011_09_26',
          '--output_dir', tmp_path/'f'], '--left_image: no such file'),
        (['mergedepth_fit', '--left_image', kitti_sample/'stereo_pair'/'image_02.jpg', '--right_image', kitti_sample/'stereo_pair'/'image_03.jpg',
          '--calib', kitti_sample/'2011_09_26', '--output_dir', tmp_path/'f', '--encoder', 'vgg16'], '--encoder should be'),
        (['mergedepth_keep_training', '--data_dir', synth, '--l_model_pth', tmp_path/'none.pth', '--r_model_pth', tmp_path/'none.pth'], '--l_model_pth: no such file'),
        (['mergedepth_train', '--data_dir', tmp_path/'nowhere'], '--data_dir: no such folder')]
    for args, says in cases:
        p = run(*args, check=False, timeout=300)
        assert one_line(p, args[0], says), (args, p.returncode, p.stderr[-2000:])
    for q in ('q', 's', 'p', 'f'): assert not (tmp_path/q).exists(), q          # nothing was written
    p = run('mergedepth_eval', '--pred_dir', tmp_path/'nowhere', '--gt_dir', synth/'left_gt', '--debug', 'True', check=False)
    assert p.returncode != 0 and 'Traceback' in p.stderr and 'CLIError' in p.stderr, p.stderr[-1500:]

def test_infer_ply_needs_a_calibration(synth, model, tmp_path):
    "One view, --format ply, images outside a KITTI or training layout and no --calib_dir: refused, naming the image (it used to write no point cloud and exit 0)."
    loose = tmp_path/'loose'; shutil.copytree(synth/'left_imgs'/'2000_01_01_drive_0001_sync', loose)
    p = run('mergedepth_infer', '--model_pth', model/'left.pth', '--input_dir', loose, '--output_dir', tmp_path/'o', '--format', 'png,ply', '--device', 'cpu', check=False)
    assert one_line(p, 'mergedepth_infer', f"--format ply needs a calibration for {loose/'0000000000.png'}"), p.stderr[-2000:]
    p = run('mergedepth_infer', '--model_pth', model/'left.pth', '--input_dir', loose, '--output_dir', tmp_path/'o2', '--format', 'ply',
            '--calib_dir', synth/'calib'/'2000_01_01', '--device', 'cpu')
    assert len(list((tmp_path/'o2').glob('*.ply'))) == 6

def test_infer_exports_onnx(model, tmp_path):
    "--format onnx alone writes the stereo models as left.onnx and right.onnx (no images needed); onnxruntime gives PyTorch's depth."
    pytest.importorskip('onnxscript')
    p = run('mergedepth_infer', '--l_model_pth', model/'left.pth', '--r_model_pth', model/'right.pth', '--output_dir', tmp_path/'x', '--format', 'onnx', timeout=600)
    assert (tmp_path/'x'/'left.onnx').is_file() and (tmp_path/'x'/'right.onnx').is_file(), p.stdout
    ort = pytest.importorskip('onnxruntime')
    from mergedepth.model import load_depthnet
    x = torch.rand(1, 3, 64, 192)
    with torch.no_grad(): ref = load_depthnet(model/'right.pth').eval()(x).numpy()
    got = ort.InferenceSession(str(tmp_path/'x'/'right.onnx'), providers=['CPUExecutionProvider']).run(['depth'], {'image': x.numpy()})[0]
    assert np.abs(got / ref - 1).max() < 1e-4

def test_prepare_a_jpeg_drive(tmp_path, kitti_sample):
    "A raw drive stored as JPEG (the seed's format) is prepared (copied as JPEG), not skipped without a word."
    from PIL import Image
    from mergedepth.testing import sample_raw_tree
    drv = sample_raw_tree(tmp_path/'raw', 2, kitti_sample)
    for f in drv.glob('image_0[23]/data/*.png'): Image.open(f).convert('RGB').save(f.with_suffix('.jpg'), quality=95); f.unlink()
    p = run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', tmp_path/'out')
    assert '2 written' in p.stdout, p.stdout
    assert len(list((tmp_path/'out'/'left_imgs').rglob('*.jpg'))) == 2 and len(list((tmp_path/'out'/'right_gt').rglob('*.npy'))) == 2

def test_rectify_cli(tmp_path):
    "mergedepth_rectify: an OpenCV calibration and two folders in, the generic layout with calib.json out; a bad folder is one line."
    pytest.importorskip('cv2')
    import json
    from PIL import Image
    from mergedepth.geometry import read_stereo_calib
    K = [[200., 0, 95.5], [0, 200., 31.5], [0, 0, 1]]
    (tmp_path/'rig.json').write_text(json.dumps(dict(M1=K, D1=[0.01, 0, 0, 0, 0], M2=K, D2=[0] * 5, R=np.eye(3).tolist(), T=[-0.25, 0, 0], hw=[64, 192])))
    for side in ('l', 'r'):
        (tmp_path/side).mkdir()
        for i in range(3): Image.fromarray((np.random.default_rng(i).random((64, 192, 3)) * 255).astype(np.uint8)).save(tmp_path/side/f'{i}.png')
    p = run('mergedepth_rectify', '--left_dir', tmp_path/'l', '--right_dir', tmp_path/'r', '--calib', tmp_path/'rig.json', '--output_dir', tmp_path/'D', '--sequence', 'cam')
    assert 'rectified 3 pair(s)' in p.stdout, p.stdout
    assert len(list((tmp_path/'D'/'cam'/'right').glob('*.png'))) == 3
    assert abs(read_stereo_calib(tmp_path/'D'/'cam'/'calib.json').t[0].item() + 0.25) < 1e-9
    p = run('mergedepth_rectify', '--left_dir', tmp_path/'nowhere', '--right_dir', tmp_path/'r', '--calib', tmp_path/'rig.json', '--output_dir', tmp_path/'E', check=False)
    assert one_line(p, 'mergedepth_rectify', '--left_dir: no such folder'), p.stderr
