"""papers/004's VAE-GAN hybrids on CIFAR-10 (Rosca, Lakshminarayanan, Mohamed, appendix K), one model
per variant:

  python -m adejax.main --config=configs/cifar_hybrids.py:aae_gan --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `cifar10` prepared in TFDS. The shared networks, Adam (0.5, 0.9), batch 64, 200,000 iterations,
the first learning rate of each model's Table 5 grid (`configs.papers.p004.hybrid_paper_config`;
`experiments/hybrids.py` sweeps the grids). papers/004 reports these models as plots (Inception score,
the independent Wasserstein critic) and box plots over the sweeps, not as a table of numbers.

  variant            model
  vae                VAE, Bernoulli likelihood (add `quantized_normal` for papers/004 appendix D's other
                     likelihood: KL 44.7 Bernoulli vs 256.7 quantized normal on its data)
  dcgan, wgan_gp     the GAN baselines (WGAN-GP: 5 critic steps, penalty 10)
  aae                adversarial autoencoder (code discriminator 3 x 1000)
  aae_pp, aae_gan    AAE++ and AAE-GAN (eq. 10, 11: l1 reconstruction, data discriminator)
  veegan             VEEGAN (reconstructor, joint discriminator, l1 code reconstruction)

Add `tiny` to any variant (e.g. `:veegan,tiny`) for the test-sized version on mock data.
"""
from adejax import config_lib
from adejax.models import hybrids
from configs.papers import p004

PAPER = {"vae": {}, "vae,quantized_normal": {}, "dcgan": {}, "wgan_gp": {}, "aae": {}, "aae_pp": {},
         "aae_gan": {}, "veegan": {}}
MODELS = hybrids.MODELS  # the one list of papers/004 models (models/hybrids.py)


def get_config(variant: str = "vae", dataset: str = "cifar10", image_size: int = 32,
               config_file: str = "configs/cifar_hybrids.py"):
  given = config_lib.parse_variant(variant, config_file, MODELS + ("quantized_normal",), exclusive=(MODELS,))
  model = next((n for n in given if n in MODELS), "vae")
  c = p004.hybrid_paper_config(model, dataset, image_size,
                                "quantized_normal" if "quantized_normal" in given else "bernoulli")
  if "tiny" in given:
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size = 16
  return c
