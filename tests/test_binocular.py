"The binocular network (--arch stereo) through every console script: phase 1, phase 2 from it, resume, inference with its rig, per-pair fitting."
import json, sys
from pathlib import Path
import numpy as np, pytest, torch
from conftest import run
from test_train_cli import SMALL

def test_stereo_arch_end_to_end(synth, tmp_path):
    p = run('mergedepth_train', '--data_dir', synth, '--epochs', 1, '--arch', 'stereo', '--n_hyp', 24, *SMALL,
            '--image_output_dir', tmp_path/'i1', '--model_output_dir', tmp_path/'m1')
    assert 'finished: 4 steps' in p.stdout, p.stdout
    assert sorted(f.name for f in (tmp_path/'m1').glob('*.pth')) == ['stereo.pth', 'stereo_00.pth']   # one network for both views
    from mergedepth.binocular import load_model, MatchDepthNet
    net = load_model(tmp_path/'m1'/'stereo.pth')
    assert isinstance(net, MatchDepthNet) and net.config['n_hyp'] == 24 and net.hw == (64, 192)
    assert net.config['hyp_spacing'] == 'log' and net.depths[0] / net.depths[1] == pytest.approx(net.depths[-2] / net.depths[-1], rel=1e-4)
    log = [json.loads(l) for l in (tmp_path/'i1'/'metrics.jsonl').read_text().splitlines()]
    assert any(r['kind'] == 'val' and 'abs_rel' in r for r in log) and 'sup_L' in log[0] and 'con_R' in log[0]
    assert log[0]['msup_L'] > 0 and log[0]['msup_R'] > 0          # the lidar loss on the matching's estimate (match_sup)
    # phase 2 from the phase-1 binocular network (one file), then resumed past its end
    args = ['mergedepth_keep_training', '--data_dir', synth, '--epochs', 1, '--arch', 'stereo', *SMALL, '--l_model_pth', tmp_path/'m1'/'stereo.pth',
            '--image_output_dir', tmp_path/'i2', '--model_output_dir', tmp_path/'m2']
    p = run(*args)
    assert 'finished: 4 steps' in p.stdout, p.stdout
    rec = [json.loads(l) for l in (tmp_path/'i2'/'metrics.jsonl').read_text().splitlines() if '"step"' in l][0]
    # continuing a binocular network on frames with lidar, phase 2 keeps the lidar loss (lidar_in_phase2 None, 04_train)
    assert 'rec_L' in rec and 'rec_R' in rec and rec['sup_L'] > 0 and rec['msup_L'] > 0
    assert torch.load(tmp_path/'m2'/'checkpoint.pt', weights_only=False)['args']['lidar_in_phase2'] == 1.
    a, b = torch.load(tmp_path/'m1'/'stereo.pth')['state_dict'], torch.load(tmp_path/'m2'/'stereo.pth')['state_dict']
    assert any(not torch.equal(a[k], b[k]) for k in a)
    p = run(*[x if x != 1 else 2 for x in args], '--resume', 'True')
    assert 'resuming from' in p.stdout and 'finished: 8 steps' in p.stdout, p.stdout
    # where it is wrong, by true depth (benchmarks/binocular_errors.py): the output's error against one computed here
    import sys, torch.nn.functional as F
    from mergedepth.data import KittiStereo, collate_stereo
    root = Path(__file__).resolve().parents[1]
    run(sys.executable, root/'benchmarks'/'binocular_errors.py', '--model', tmp_path/'m2'/'stereo.pth', '--data_dir', synth,
        '--out', tmp_path/'errors.json')
    E = json.loads((tmp_path/'errors.json').read_text())
    net = load_model(tmp_path/'m2'/'stereo.pth').eval()
    b = collate_stereo(list(KittiStereo(synth, 'test', (64, 192))))
    with torch.no_grad(): d = F.interpolate(net(b['left'], b['right'], b['calib'])[0], size=(64, 192), mode='bilinear', align_corners=False)
    g = b['left_gt']; z, e = g[(g > 0) & (g < 80)], ((d - g).abs() / g)[(g > 0) & (g < 80)]
    for row in E['bins']:
        lo, hi = (float(v) for v in row['bin'].split(' ')[0].split('-'))
        s = (z >= lo) & (z < hi)
        assert row['points'] == int(s.sum()) and abs(row['output']['abs_rel'] - float(e[s].mean())) < 1e-4, (row, float(e[s].mean()))
        big = e[s] > 0.25                                   # outliers: their share of the points and of the error
        assert abs(row['output']['over_25_share'] - float(big.float().mean())) < 1e-3, row
        assert abs(row['output']['over_25_error_share'] - float(e[s][big].sum() / e[s].sum())) < 1e-3, row
        assert set(row) >= {'soft_argmin', 'matching_mode', 'features_mode', 'images_mode', 'photometric'}
    assert sum(r['points'] for r in E['bins']) == len(z)
    # a monocular file where a binocular one is expected is refused, naming it
    from mergedepth.model import DepthNet, save_depthnet
    save_depthnet(DepthNet('resnet18', pretrained=False), tmp_path/'mono.pth', hw=(64, 192))
    mono = run('mergedepth_keep_training', '--data_dir', synth, '--arch', 'stereo', *SMALL, '--max_steps', 1, '--l_model_pth', tmp_path/'mono.pth',
               '--image_output_dir', tmp_path/'i3', '--model_output_dir', tmp_path/'m3', check=False)
    assert mono.returncode == 2 and 'mono.pth' in mono.stderr and 'monocular' in mono.stderr, mono.stderr
    # inference: both views from one file; the rig comes from the training layout's calib/<date>
    out = tmp_path/'pred'
    p = run('mergedepth_infer', '--model_pth', tmp_path/'m2'/'stereo.pth', '--input_dir', synth, '--output_dir', out, '--format', 'png,confidence')
    left, right = sorted((out/'left').rglob('*.png')), sorted((out/'right').rglob('*.png'))
    depth_l = [f for f in left if 'confidence' not in f.name]
    assert depth_l and len(depth_l) == len(right) and len(left) == 2 * len(right)     # a confidence map beside each left depth map
    from mergedepth.data import read_depth
    img = next(iter(sorted((Path(synth)/'left_imgs').rglob('*.png'))))
    d = read_depth(out/'left'/img.relative_to(Path(synth)/'left_imgs'))
    from PIL import Image
    assert d.shape == Image.open(img).size[::-1] and (d > 0).all()       # the input's own size, a depth everywhere
    # ONNX: one graph with the rig as inputs, run in onnxruntime against PyTorch
    run('mergedepth_infer', '--model_pth', tmp_path/'m2'/'stereo.pth', '--output_dir', tmp_path/'x', '--format', 'onnx')
    import onnxruntime as ort
    from mergedepth.geometry import read_kitti_calib
    rig = read_kitti_calib(next((Path(synth)/'calib').iterdir())).stereo().resize((64, 192)).to(torch.float32)
    x1, x2 = torch.rand(1, 3, 64, 192), torch.rand(1, 3, 64, 192)
    net = load_model(tmp_path/'m2'/'stereo.pth').eval()
    with torch.no_grad(): r1, r2 = net(x1, x2, rig)
    sess = ort.InferenceSession(str(tmp_path/'x'/'stereo.onnx'), providers=['CPUExecutionProvider'])
    g1, g2 = sess.run(['depth_left', 'depth_right'], dict(left=x1.numpy(), right=x2.numpy(), K1=rig.K1[None].numpy(), K2=rig.K2[None].numpy(),
                                                          R=rig.R[None].numpy(), t=rig.t[None].numpy()))
    assert np.abs(g1 / r1.numpy() - 1).max() < 1e-4 and np.abs(g2 / r2.numpy() - 1).max() < 1e-4
    # a side-by-side video through the binocular model, with the rig of its date
    import cv2
    L = [np.asarray(Image.open(p)) for p in sorted((Path(synth)/'left_imgs').rglob('*.png'))][:4]
    R = [np.asarray(Image.open(p)) for p in sorted((Path(synth)/'right_imgs').rglob('*.png'))][:4]
    w = cv2.VideoWriter(str(tmp_path/'drive.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 10, (2 * L[0].shape[1], L[0].shape[0]))
    for l, r in zip(L, R): w.write(np.ascontiguousarray(np.concatenate([l, r], 1)[..., ::-1]))
    w.release()
    no_rig = run('mergedepth_infer', '--model_pth', tmp_path/'m2'/'stereo.pth', '--video', tmp_path/'drive.mp4', '--output_dir', tmp_path/'v', check=False)
    assert no_rig.returncode == 2 and 'rig' in no_rig.stderr, no_rig.stderr
    p = run('mergedepth_infer', '--model_pth', tmp_path/'m2'/'stereo.pth', '--video', tmp_path/'drive.mp4', '--output_dir', tmp_path/'v',
            '--calib_dir', next((Path(synth)/'calib').iterdir()), '--per_frame', 'True', '--format', 'png')
    assert len(list((tmp_path/'v'/'left'/'drive').glob('*.png'))) == 4 and len(list((tmp_path/'v'/'right'/'drive').glob('*.png'))) == 4

def test_fit_arch_stereo(kitti_sample, tmp_path):
    s = kitti_sample
    p = run('mergedepth_fit', '--left_image', s/'stereo_pair'/'image_02.jpg', '--right_image', s/'stereo_pair'/'image_03.jpg',
            '--calib', s/'2011_09_26'/'calib_cam_to_cam.txt', '--output_dir', tmp_path, '--steps', 3, '--max_pixels', 20000, '--arch', 'stereo')
    from mergedepth.data import read_depth
    d = read_depth(tmp_path/'left'/'image_02.png')
    assert d.shape == (375, 1242) and np.isfinite(d).all() and (d > 0).all()
    bad = run('mergedepth_fit', '--left_image', s/'stereo_pair'/'image_02.jpg', '--right_image', s/'stereo_pair'/'image_03.jpg',
              '--calib', s/'2011_09_26'/'calib_cam_to_cam.txt', '--output_dir', tmp_path, '--arch', 'binocular', check=False)
    assert bad.returncode == 2 and '--arch' in bad.stderr


def test_memory_count(tmp_path):
    "benchmarks/binocular.py's count of what the backward pass keeps, against closed-form cases, then its --memory run"
    import importlib.util
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location('bench_binocular', root/'benchmarks'/'binocular.py')
    B = importlib.util.module_from_spec(spec); spec.loader.exec_module(B)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1); x = torch.rand(2, 3, 32, 32)
    n = B.saved_for_backward(lambda: torch.relu(conv(x)).sum(), list(conv.parameters()))
    assert n == x.numel() * 4 + 2 * 8 * 32 * 32 * 4               # the convolution's input and the relu's output; not the weight
    w, a = torch.rand(1000, requires_grad=True), x.flatten()[:1000]
    n = B.saved_for_backward(lambda: (w * a + w * a).sum(), [])
    assert n == x.untyped_storage().nbytes()                        # both products keep a view of x: its storage, once
    out = tmp_path/'mem.json'
    run(sys.executable, root/'benchmarks'/'binocular.py', '--memory', '--hw', '64x192', '--batch', '2', '--encoder', 'resnet18', '--out', out)
    rows = json.loads(out.read_text())['rows']
    for r in rows.values():                                         # all of it is alive at once just before the backward pass
        assert r['peak_rss_above_start_gib_bf16'] >= r['saved_for_backward_gib_bf16'] + 0.75 * r['params_grads_adam_gib'] - 1e-3
    assert rows['stereo']['params_grads_adam_gib'] < 0.6 * rows['mono']['params_grads_adam_gib']   # one network against two
