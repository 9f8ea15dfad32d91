"""Score any samples.npz (key `images`, uint8 N x H x W x C) with adejax's sample metrics, e.g. the DCGAN
reference of tools/dcgan_reference.py, or another codebase's samples:

  python tools/score_samples.py --samples=DIR/samples.npz [--config=configs/default.py]

The samples are compared with the first N test images of the config's dataset (at its resolution) by
`adejax.evaluate.sample_quality`: fid_domain, is_domain and PRD with the cached domain classifier (its
held-out accuracy printed beside them), and Inception FID/IS when the weights file is configured.
"""
import os

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from adejax import evaluate, input_pipeline

config_flags.DEFINE_config_file("config", "configs/default.py", "Config naming the dataset.")
flags.DEFINE_string("samples", None, "samples.npz to score.", required=True)
FLAGS = flags.FLAGS


def main(_):
  samples = np.load(FLAGS.samples)["images"]
  test = input_pipeline.load_split(FLAGS.config.data, FLAGS.config.data.eval_split)
  if samples.shape[1:] != test.images.shape[1:]:
    raise SystemExit(f"samples are {samples.shape[1:]}, the test images {test.images.shape[1:]}")
  metrics = evaluate.sample_quality(FLAGS.config, samples, test, os.path.dirname(FLAGS.samples) or ".")
  print(evaluate.format_table(metrics))


if __name__ == "__main__":
  app.run(main)
