"""Tables 4 and 5 of papers/002: AV-ADE (wg, rd) on STL-10 48x48, ImageNet 64x64, LSUN at 64 and 128.

  python -m adejax.sweep --experiment=experiments/high_resolution.py --workdir=DIR \
      [--only=stl10_48,imagenet_64]       # TFDS data prepared under --config.data.tfds_data_dir

Each row is its config (configs/stl10_avade.py, imagenet_avade.py, celeba_avade.py,
lsun_avade.py:<category>,<64|128>), which holds the paper's numbers: batch 32; 64x64 models get one
more generator level at 64x64 (two at 128x128). CelebA has no paper number. ImageNet-64, LSUN and
CelebA stream their training split from TFDS (data.stream, resumable); held-out numbers use their
validation (LSUN, ImageNet) or test (CelebA, STL-10) split. LSUN and CelebA images are centre-cropped
to a square before resizing.
"""
from adejax import experiment
from configs import celeba_avade, imagenet_avade, lsun_avade, stl10_avade


def get_experiment(scale: str):
  rows = [("stl10_48", stl10_avade, "wg,rd"), ("imagenet_64", imagenet_avade, "wg,rd"),
          ("celeba_64", celeba_avade, "wg,rd")]
  rows += [(f"lsun_{v.replace(',', '_')}", lsun_avade, v) for v in lsun_avade.PAPER]
  return [experiment.Member(name, experiment.apply_scale(f.get_config(v), scale), f.PAPER[v]) for name, f, v in rows]
