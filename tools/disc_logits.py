"""Which images a trained run's discriminator calls real: its logits on held-out real images, on the
model's reconstructions of them (a family with an encoder) and on its samples at temperatures 1.0 and
0.6, with the spread of each set's pixels across images (a collapsed generator's samples barely vary).
A healthy adversarial run scores real images above its samples; a discriminator outrun by a collapsing
generator scores the samples above everything real (docs/results/stacked_medium.md, the small-D rows).

  python tools/disc_logits.py --workdir=DIR [--n=256]
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

from adejax import config_lib, evaluate, losses
from adejax.families import ade
from adejax.models import discriminators


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--n", type=int, default=256)
  args = parser.parse_args()
  c = config_lib.load_run_config(args.workdir)
  if not (c.model.family == "flow_gan" or (c.model.family == "ade" and ade.StepConfig.from_config(c).adversarial)):
    raise SystemExit(f"{args.workdir}: model.family {c.model.family!r} (mode {c.get('mode', '-')!r}) "
                     "trains no image discriminator of its own (AV-ADE, AV-GDE, the GAN and Flow-GAN "
                     "do; V-ADE and the VAE keep an initialised, untrained one): nothing to score.")
  trainer, state, test = evaluate.restore_trainer(c, args.workdir)
  disc = trainer.family.disc
  images, labels = test.images[:args.n], (test.labels[:args.n] if test.has_labels else None)
  d_labels = trainer._labels(labels, len(images))
  logit = jax.jit(lambda x: disc.apply({"params": state.disc_params},
                                       discriminators.discriminator_input(x), d_labels))
  sets = [("real (held out)", losses.pixel_centres(images))]
  if trainer.family.has_encoder:
    sets.append(("reconstructions", trainer.reconstruct(state, images, labels=labels)))
  sets += [(f"samples t={t}", trainer.sample(state, len(images), temperature=t, seed=1, labels=labels))
           for t in (1.0, 0.6)]
  print(f"step {int(state.step)}: discriminator logits on {len(images)} images each")
  for name, x in sets:
    z = np.asarray(logit(jnp.asarray(x))).ravel()
    print(f"{name:16s} logit mean {z.mean():+.2f} sd {z.std():.2f}, P(logit > 0) {np.mean(z > 0):.2f}; "
          f"pixel sd across images {np.asarray(x).std(0).mean():.3f}")


if __name__ == "__main__":
  main()
