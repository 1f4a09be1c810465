"mergedepth_fit end to end on the real KITTI pair: the self-supervised fit must agree with a classical matcher."
import json
import numpy as np
import pytest
from conftest import run
from mergedepth.data import read_rgb8, read_depth
from mergedepth.geometry import read_stereo_calib, write_stereo_calib
from mergedepth.fit import sgbm_depth, agreement

def test_fit_real_pair_agrees_with_sgbm(kitti_sample, tmp_path):
    pytest.importorskip('cv2')
    L, R = kitti_sample/'stereo_pair'/'image_02.jpg', kitti_sample/'stereo_pair'/'image_03.jpg'
    C = kitti_sample/'2011_09_26'/'calib_cam_to_cam.txt'
    p = run('mergedepth_fit', '--left_image', L, '--right_image', R, '--calib', C, '--output_dir', tmp_path/'out',
            '--format', 'png,npy,color', '--device', 'cpu', timeout=1200)
    d = np.load(tmp_path/'out'/'left'/'image_02.npy')
    assert d.shape == (375, 1242) and d.dtype == np.float32
    png = read_depth(tmp_path/'out'/'left'/'image_02.png')                       # KITTI's 16-bit format, metres x 256
    assert np.abs(png - np.clip(d, 0, 65535 / 256)).max() <= 0.5 / 256 + 1e-4
    assert (tmp_path/'out'/'right'/'image_03.png').is_file() and (tmp_path/'out'/'left'/'image_02_color.png').is_file()
    ref = sgbm_depth(read_rgb8(L), read_rgb8(R), read_stereo_calib(C))
    ag = agreement(d, ref)
    print(json.dumps(ag), p.stdout.strip().splitlines()[-1])
    assert ag['pixels'] > 0.5 * ref.size                                           # SGBM is confident on most of the image
    assert ag['median_rel'] <= 0.05, ag
    assert ag['abs_rel'] <= 0.10, ag                       # the bound for real ground truth, here against SGBM

def test_fit_refuses_a_rig_of_another_size(kitti_sample, tmp_path):
    L, R = kitti_sample/'stereo_pair'/'image_02.jpg', kitti_sample/'stereo_pair'/'image_03.jpg'
    write_stereo_calib(tmp_path/'calib.json', read_stereo_calib(kitti_sample/'2011_09_26').resize((187, 621)))
    p = run('mergedepth_fit', '--left_image', L, '--right_image', R, '--calib', tmp_path/'calib.json', '--output_dir', tmp_path/'o', check=False)
    assert p.returncode == 2 and 'calib.json is for 621x187 images' in p.stderr and '--resize_calib' in p.stderr, p.stderr
    assert not (tmp_path/'o').exists()
    p = run('mergedepth_fit', '--left_image', L, '--right_image', R, '--calib', tmp_path/'calib.json', '--output_dir', tmp_path/'o',
            '--resize_calib', 'True', '--steps', '2', '--device', 'cpu')
    assert (tmp_path/'o'/'left'/'image_02.png').is_file()
