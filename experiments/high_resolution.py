"""Tables 4 and 5 of papers/002: AV-ADE (wg, rd) on STL-10 48x48, ImageNet 64x64, LSUN at 64 and 128.

  python -m adejax.sweep --experiment=experiments/high_resolution.py --workdir=DIR \
      [--only=stl10_48,imagenet_64]       # TFDS data prepared under --config.data.tfds_data_dir

Batch 32; 64x64 models get one more generator level at 64x64 (two at 128x128). CelebA has no paper
number. ImageNet-64, LSUN and CelebA stream their training split from TFDS (data.stream, resumable);
held-out numbers use their validation (LSUN, ImageNet) or test (CelebA, STL-10) split. LSUN and CelebA
images are centre-cropped to a square before resizing.
"""
from adejax import sweep

LSUN_64 = {"bedroom": (3.92, 21.1), "tower": (3.95, 15.5), "bridge": (4.1, 25.2), "kitchen": (4.0, 15.3),
           "church_outdoor": (4.3, 13.2), "living_room": (4.1, 16.7), "dining_room": (4.3, 14.6),
           "classroom": (4.6, 20.0), "conference_room": (4.2, 21.3), "restaurant": (4.7, 20.5)}
LSUN_128 = {"bedroom": (3.0, 70.1), "tower": (3.1, 40.8), "bridge": (3.4, 64.2), "kitchen": (3.1, 45.2),
            "church_outdoor": (3.5, 47.3), "living_room": (3.2, 50.6), "dining_room": (3.2, 41.0),
            "classroom": (3.5, 59.2), "conference_room": (3.1, 61.7), "restaurant": (3.8, 60.0)}


def get_experiment(scale: str):
  rows = [("stl10_48", "stl10", 48, {"bpd": 4.4, "is": 9.4, "fid": 44.3}),
          ("imagenet_64", "downsampled_imagenet/64x64", 64, {"bpd": 4.90, "is": 8.5, "fid": 45.5}),
          ("celeba_64", "celeb_a", 64, {})]
  for res, table in ((64, LSUN_64), (128, LSUN_128)):
    rows += [(f"lsun_{cat}_{res}", f"lsun/{cat}", res, {"bpd": b, "fid": f}) for cat, (b, f) in table.items()]
  members = []
  for name, dataset, size, paper in rows:
    c = sweep.paper_config("av-ade", dataset, size, wg=True, rd=True)
    if dataset == "stl10":
      c.data.train_split = "train+unlabelled"
    else:
      c.data.stream = True
      c.data.eval_split = "test" if dataset == "celeb_a" else "validation"
    members.append(sweep.Member(name, sweep.apply_scale(c, scale), paper))
  return members
