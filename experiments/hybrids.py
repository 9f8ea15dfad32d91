"""papers/004's model comparison (section 6.4): VAE, DCGAN, WGAN-GP, AAE, AAE++, AAE-GAN and VEEGAN on
one footing, the same networks and evaluation (bits/dim where the model has a likelihood, fid_domain /
FID, IS, PRD, the independent Wasserstein critic).

  python -m adejax.sweep --experiment=experiments/hybrids.py --workdir=DIR               # paper scale
  python -m adejax.sweep --experiment=experiments/hybrids.py --workdir=DIR --scale=small # 2-core CPU

At paper scale every model runs over its Table 5 learning-rate grid (generator/encoder x discriminator x
code discriminator; for AAE++ / AAE-GAN also appendix K.1's reconstruction weights 1, 5, 10, 50 for the
encoder and the generator), each point a member of the model's group, on CIFAR-10
(configs/cifar_hybrids.py). At small scale one member per model (the first point of its grid) on the
offline Fashion-MNIST, plus the quantized-normal VAE.
"""
import itertools

from adejax import experiment
from configs import cifar_hybrids
from configs.papers import p004


def grid(model: str):
  gen, disc, code = (axis or (0.0,) for axis in p004.HYBRID_LR_GRIDS[model])
  weights = p004.HYBRID_REC_WEIGHTS if model in ("aae_pp", "aae_gan") else (1.0,)
  return itertools.product(gen, disc, code, weights, weights)


def get_experiment(scale: str):
  members = []
  for model in cifar_hybrids.MODELS:
    variants = [model] + (["vae,quantized_normal"] if model == "vae" else [])
    for variant in variants:
      name = variant.replace(",quantized_normal", "-qn")
      if scale != "full":
        members.append(experiment.Member(name, experiment.apply_scale(cifar_hybrids.get_config(variant), scale)))
        continue
      for lr, lr_disc, lr_code, w_enc, w_gen in grid(model):
        c = cifar_hybrids.get_config(variant)
        c.optim.lr, c.hybrid.lr_disc, c.hybrid.lr_code = lr, lr_disc, lr_code
        c.hybrid.rec_weight_encoder, c.hybrid.rec_weight_generator = w_enc, w_gen
        point = f"lr{lr:g}_d{lr_disc:g}_c{lr_code:g}" + (f"_w{w_enc:g}-{w_gen:g}" if w_enc != 1 or w_gen != 1 else "")
        members.append(experiment.Member(f"{name}/{point}", c, group=name))
  return members
