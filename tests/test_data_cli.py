"mergedepth_synth and mergedepth_prepare end to end, including a prepare run killed midway and resumed, and frames stored at the training size."
import shutil, signal, subprocess, time, os
from pathlib import Path
import numpy as np
from conftest import run
from mergedepth.data import read_depth, list_frames, KittiStereo, sample_raw_tree
from mergedepth.geometry import read_kitti_calib, read_velodyne, velodyne_to_depth

def test_synth_layout(synth):
    assert len(list_frames(synth)) == 12
    for sub in ('left_imgs', 'right_imgs', 'left_gt', 'right_gt'): assert len(list((synth/sub).rglob('*.*'))) == 12
    assert read_kitti_calib(synth/'calib'/'2000_01_01').stereo().baseline > 0.5
    assert sum(len((synth/'splits'/f'{s}.txt').read_text().split('\n')) - 1 for s in ('train', 'val', 'test')) == 12
    s = KittiStereo(synth, 'train', hw=(64, 192))[0]
    assert (s['right_gt'] > 0).sum() > 100

def raw_tree(root:Path, sample:Path, n:int) -> Path:
    return sample_raw_tree(root, n, sample)

def test_prepare_twice(tmp_path, kitti_sample):
    drv = raw_tree(tmp_path/'raw', kitti_sample, 3)
    (drv/'image_03'/'data'/'0000000002.png').unlink()                     # a frame without its right image
    out = tmp_path/'out'
    p = run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', out, '--workers', 2, check=False)
    assert p.returncode == 1 and '0000000002' in p.stdout and '2 written' in p.stdout, p.stdout
    gl = read_depth(out/'left_gt'/drv.name/'0000000000.npy')
    ref = velodyne_to_depth(read_velodyne(drv/'velodyne_points'/'data'/'0000000000.bin'), read_kitti_calib(kitti_sample/'2011_09_26'), 2)
    assert np.array_equal(gl, ref)
    assert 17000 < (read_depth(out/'right_gt'/drv.name/'0000000001.npy') > 0).sum() < 21000
    p = run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', out, '--drives', drv.name, check=False)
    assert '2 already there' in p.stdout, p.stdout

def test_prepare_killed_then_resumed(tmp_path, kitti_sample):
    n = 60
    drv = raw_tree(tmp_path/'raw', kitti_sample, n)
    out = tmp_path/'out'
    env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
    proc = subprocess.Popen(['mergedepth_prepare', '--raw_dir', str(tmp_path/'raw'), '--output_dir', str(out), '--workers', '1'],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    t0 = time.time()
    while time.time() - t0 < 120 and len(list((out/'left_gt').rglob('*.npy'))) < 5: time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    done = len(list((out/'left_gt').rglob('*.npy')))
    assert 5 <= done < n, f"the kill came too late to test anything ({done} frames done)"
    for f in (out/'left_gt').rglob('*.npy'): read_depth(f)                 # nothing half-written under a final name
    p = run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', out)
    assert f'{n} frame(s)' in p.stdout
    assert len(list((out/'right_gt').rglob('*.npy'))) == n and not list(out.rglob('*.tmp*'))

def test_prepare_at_training_size(tmp_path, kitti_sample):
    "--image_size stores images and lidar maps at the training size; a folder keeps one size; a bad size is named."
    from mergedepth.data import read_image_size
    drv = raw_tree(tmp_path/'raw', kitti_sample, 2)
    out = tmp_path/'small'
    run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', out, '--image_size', '192x640')
    assert read_image_size(out/'left_imgs'/drv.name/'0000000000.png') == (192, 640)
    gt = read_depth(out/'right_gt'/drv.name/'0000000001.npy')
    assert gt.shape == (192, 640) and 8000 < (gt > 0).sum() < 19215          # points merge where several meet one pixel
    s = KittiStereo(out, hw=(192, 640))[1]
    assert s['left'].shape == (3, 192, 640) and s['calib'].hw == (192, 640)
    p = run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', out, check=False)
    assert p.returncode != 0 and 'already holds frames at 192x640' in p.stderr, p.stderr
    p = run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', tmp_path/'x', '--image_size', '192by640', check=False)
    assert p.returncode != 0 and 'should look like 192x640' in p.stderr, p.stderr
