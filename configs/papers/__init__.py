"""The papers' config factories: each paper's settings in one place, for the config files beside this
package (configs/*.py) and the experiments built on them. p002: AV-ADE and its ablations (papers/002),
p003: the VAE with a Glow decoder and its Glow baseline (papers/003), p004: the VAE-GAN hybrids
(papers/004)."""
from __future__ import annotations

import ml_collections


def paper_schedule(c: ml_collections.ConfigDict, num_steps: int) -> ml_collections.ConfigDict:
  """Batch 64 for `num_steps`, with the logging, image, evaluation and checkpoint intervals of a
  multi-day run (papers/003's and papers/004's configs)."""
  c.train.batch_size, c.train.num_steps = 64, num_steps
  c.train.log_every, c.train.image_every = 500, 20_000
  c.eval.every, c.ckpt.every = 50_000, 10_000
  return c
