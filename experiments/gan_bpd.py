"""Section 5 of papers/002, "BPD for a GAN": train the GAN baseline, then freeze its generator and train
an inference network and an isotropic sigma around it by maximum likelihood; the ELBO gives an upper
bound on the GAN's bits/dim (the paper's approximate [7.0] in Table 1).

  python -m adejax.sweep --experiment=experiments/gan_bpd.py --workdir=DIR [--scale=small]
"""
from adejax import sweep


def get_experiment(scale: str):
  gan = sweep.apply_scale(sweep.paper_config("gan"), scale)
  bpd = sweep.apply_scale(sweep.paper_config("vae"), scale)
  bpd.model.width, bpd.model.generator = gan.model.width, "vector"  # the GAN's own generator
  bpd.train.init_checkpoint = "../gan"  # the member below, relative to this member's workdir
  bpd.train.freeze = "decoder"
  bpd.train.num_steps = max(2, gan.train.num_steps // 2)
  return [sweep.Member("gan", gan, {"is": 6.8, "fid": 31.4}),
          sweep.Member("gan_bpd", bpd, {"bpd": 7.0})]
