"mergedepth_synth and mergedepth_prepare end to end, including a prepare run killed midway and resumed."
import shutil, signal, subprocess, time, os
from pathlib import Path
import numpy as np
from conftest import run
from mergedepth.data import read_depth, list_frames, KittiStereo
from mergedepth.geometry import read_kitti_calib, read_velodyne, velodyne_to_depth

def test_synth_layout(synth):
    assert len(list_frames(synth)) == 12
    for sub in ('left_imgs', 'right_imgs', 'left_gt', 'right_gt'): assert len(list((synth/sub).rglob('*.*'))) == 12
    assert read_kitti_calib(synth/'calib'/'2000_01_01').stereo().baseline > 0.5
    assert sum(len((synth/'splits'/f'{s}.txt').read_text().split('\n')) - 1 for s in ('train', 'val', 'test')) == 12
    s = KittiStereo(synth, 'train', hw=(64, 192))[0]
    assert (s['right_gt'] > 0).sum() > 100

def raw_tree(root:Path, sample:Path, n:int) -> Path:
    "A KITTI raw tree of n frames built from the real sample frame (its left image stands in for both cameras)."
    drv = root/'2011_09_26'/'2011_09_26_drive_0001_sync'
    for sub in ('image_02/data', 'image_03/data', 'velodyne_points/data'): (drv/sub).mkdir(parents=True)
    for f in ('calib_cam_to_cam.txt', 'calib_velo_to_cam.txt'): shutil.copy(sample/'2011_09_26'/f, root/'2011_09_26'/f)
    for i in range(n):
        for cam in ('image_02', 'image_03'): shutil.copy(sample/'lidar_frame'/'image_02.png', drv/cam/'data'/f'{i:010d}.png')
        shutil.copy(sample/'lidar_frame'/'velodyne.bin', drv/'velodyne_points'/'data'/f'{i:010d}.bin')
    return drv

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
