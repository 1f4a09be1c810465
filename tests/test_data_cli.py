"mergedepth_synth and mergedepth_prepare end to end, including a prepare run killed midway and resumed, and frames stored at the training size."
import json, shutil, signal, subprocess, time, os
from pathlib import Path
import numpy as np
from conftest import run
from mergedepth.data import read_depth, list_frames, KittiStereo
from mergedepth.testing import sample_raw_tree
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
    ref = velodyne_to_depth(read_velodyne(drv/'velodyne_points'/'data'/'0000000000.bin'), read_kitti_calib(kitti_sample/'2011_09_26'), 2, rounding='devkit')
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

def test_prepare_with_cache(tmp_path, kitti_sample):
    "--cache decodes every frame into the training-size cache; the dataset then uses it as it is and gives the PNG path's samples."
    import torch
    drv = raw_tree(tmp_path/'raw', kitti_sample, 2)
    out = tmp_path/'out'
    p = run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', out, '--cache', '64x192', '--workers', 1)
    meta = out/'cache'/'64x192'/drv.name/'meta.json'
    assert meta.is_file() and 'cache:' in p.stdout, p.stdout
    t = meta.stat().st_mtime_ns
    a, b = KittiStereo(out, hw=(64, 192), cache=True, progress=False)[1], KittiStereo(out, hw=(64, 192))[1]
    assert meta.stat().st_mtime_ns == t                                   # used as it is, not built again
    for k in ('left', 'right', 'left_gt', 'right_gt'): assert torch.equal(a[k], b[k]), k
    assert (a['left_gt'] > 0).sum() > 1000
    p = run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', tmp_path/'x', '--cache', '64by192', check=False)
    assert p.returncode != 0 and 'should look like 192x640' in p.stderr and not (tmp_path/'x').exists(), p.stderr

def _devkit_projection(velo_bin:Path, date_dir:Path, cam:int) -> np.ndarray:
    "KITTI devkit-style sparse depth, written independently of the package: P_rect_0c @ R_rect_00 @ [R|T]_velo, points with"
    "velodyne x >= 0, pixel (round(u) - 1, round(v) - 1), camera-z depth, the nearest point wins where several land."
    def calib(f):
        out = {}
        for line in (date_dir/f).read_text().splitlines():
            k, _, v = line.partition(':')
            try: out[k.strip()] = np.array([float(x) for x in v.split()])
            except ValueError: pass
        return out
    cc, vc = calib('calib_cam_to_cam.txt'), calib('calib_velo_to_cam.txt')
    R0 = np.eye(4); R0[:3, :3] = cc['R_rect_00'].reshape(3, 3)
    Tv = np.eye(4); Tv[:3, :3] = vc['R'].reshape(3, 3); Tv[:3, 3] = vc['T']
    P = cc[f'P_rect_0{cam}'].reshape(3, 4) @ R0 @ Tv
    W, H = (int(x) for x in cc[f'S_rect_0{cam}'])
    pts = np.fromfile(velo_bin, dtype=np.float32).reshape(-1, 4)
    pts = pts[pts[:, 0] >= 0]
    p = np.c_[pts[:, :3].astype(np.float64), np.ones(len(pts))] @ P.T
    z = p[:, 2]; u = np.round(p[:, 0] / z) - 1; v = np.round(p[:, 1] / z) - 1
    ok = (u >= 0) & (v >= 0) & (u < W) & (v < H)
    u, v, z = u[ok].astype(int), v[ok].astype(int), z[ok]
    depth = np.zeros((H, W))
    order = np.argsort(-z)                                              # far first: the nearest is written last
    depth[v[order], u[order]] = z[order]
    return depth

def test_prepare_ground_truth_is_the_devkit_one(tmp_path, kitti_sample):
    drv = raw_tree(tmp_path/'raw', kitti_sample, 1)
    out = tmp_path/'out'
    run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', out)
    assert json.loads((out/'prepared.json').read_text())['lidar_rounding'] == 'devkit'
    velo = drv/'velodyne_points'/'data'/'0000000000.bin'
    for side, cam in (('left', 2), ('right', 3)):
        got, ref = read_depth(out/f'{side}_gt'/drv.name/'0000000000.npy'), _devkit_projection(velo, kitti_sample/'2011_09_26', cam)
        assert np.array_equal(got > 0, ref > 0), (side, (got > 0).sum(), (ref > 0).sum())       # the same support
        assert np.abs(got - ref).max() < 1e-4                                                     # float32 rounding
        assert 18000 < (got > 0).sum() < 21000
    # mergedepth_eval says which convention its ground truth used, and warns about the other one
    p = run('mergedepth_eval', '--pred_dir', out/'left_gt', '--gt_dir', out/'left_gt', '--output', tmp_path/'m.json')
    assert 'devkit rounding' in p.stdout and json.loads((tmp_path/'m.json').read_text())['gt_rounding'] == 'devkit'
    p = run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', out, '--rounding', 'nearest', check=False)
    assert p.returncode != 0 and "rounding 'devkit'" in p.stderr, p.stderr          # never both in one folder
    run('mergedepth_prepare', '--raw_dir', tmp_path/'raw', '--output_dir', tmp_path/'near', '--rounding', 'nearest')
    p = run('mergedepth_eval', '--pred_dir', tmp_path/'near'/'left_gt', '--gt_dir', tmp_path/'near'/'left_gt', '--output', tmp_path/'n.json')
    assert "warning: the ground truth was projected with rounding 'nearest'" in p.stderr, p.stderr
