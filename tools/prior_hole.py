"""Where prior samples go wrong (issue 29): fid_domain of a trained hierarchical VAE / ADE run's samples
(a) from the prior at several temperatures, (b) with the first k latent levels (the global vector if
any, then the lowest resolution first) set to the posterior means of held-out images and the rest drawn
from their priors, and (c) with the top level drawn from a diagonal Gaussian fitted to those posterior
means. If (b) is far better than the prior's samples, the decoder can draw the images and the prior
does not reach where the posterior puts them (a prior hole); if (c) is not better, what the prior misses
is the correlation between units.

  python tools/prior_hole.py --workdir=DIR [--n=2000]
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

from adejax import config_lib, evaluate, losses
from adejax.evaluation import fid


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--n", type=int, default=2000)
  args = parser.parse_args()
  c = config_lib.load_run_config(args.workdir)
  trainer, state, test = evaluate.restore_trainer(c, args.workdir)
  m, n, chunk = trainer.model, args.n, 200
  v = {"params": trainer.eval_params(state), "batch_stats": state.batch_stats}
  features, _ = evaluate.domain_features(c, test)
  real_f, _ = features(test.images[:n])

  def score(images):
    u8 = np.round(np.clip(np.asarray(images), 0, 1) * 255).astype(np.uint8)
    f, logits = features(u8)
    return fid.fid_from_features(real_f, f), fid.inception_score(logits)[0]

  generate = jax.jit(lambda r, t: m.apply(v, r, chunk, t, method="generate"))
  for t in (1.0, 0.85, 0.7, 0.5):
    print("prior, temperature %.2f: fid_domain %.1f is %.2f"
          % ((t,) + score(np.concatenate([generate(jax.random.PRNGKey(i), t) for i in range(n // chunk)]))))
  y = losses.pixel_centres(test.images[:n])
  encode = jax.jit(lambda y: m.apply(v, m.apply(v, y, False, method="to_features")[0], jax.random.PRNGKey(0),
                                     method=lambda mod, f, r: mod.vae.encode(f, r)))
  means = [np.concatenate(a) for a in zip(*[encode(y[i:i + chunk]) for i in range(0, n, chunk)])]
  decode = jax.jit(lambda zs, r: m.apply(v, zs, r, method=lambda mod, zs, r: mod.from_features(
      mod.vae._decode(chunk, r, None, 1.0, zs)[0])))
  for keep in range(1, len(means)):
    images = [decode([jnp.asarray(z[i:i + chunk]) for z in means[:keep]] + [None] * (len(means) - keep),
                     jax.random.PRNGKey(i)) for i in range(0, n, chunk)]
    print("first %d level(s) = posterior means of held-out images, the rest from the prior: fid_domain "
          "%.1f is %.2f" % ((keep,) + score(np.concatenate(images))))
  top = means[0]
  mu, sd = top.mean(0), top.std(0)
  rng = np.random.default_rng(0)
  images = [decode([jnp.asarray(mu + sd * rng.standard_normal((chunk,) + mu.shape), jnp.float32)]
                   + [None] * (len(means) - 1), jax.random.PRNGKey(i)) for i in range(n // chunk)]
  print("top level from a diagonal Gaussian fitted to its posterior means: fid_domain %.1f is %.2f"
        % score(np.concatenate(images)))
  print("top level posterior means: mean |mean| %.3f, mean spread %.3f (prior: 0, 1)" % (np.abs(mu).mean(), sd.mean()))


if __name__ == "__main__":
  main()
