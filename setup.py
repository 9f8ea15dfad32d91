"""adejax: hybrid likelihood-adversarial generative image models in JAX/Flax."""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "jax>=0.10.2",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "chex>=0.1.90",
    "distrax>=0.1.9",
    # distrax needs tfp; only dated nightlies support current JAX.  This build is verified.
    "tfp-nightly==0.26.0.dev20261027",
    "orbax-checkpoint>=0.12.8",
    "ml-collections>=1.1.0",
    "clu>=0.0.12",
    "tensorflow-cpu>=2.21,<2.22",
    "tensorboard>=2.21",
    "tensorflow-datasets>=4.9.10",
    "absl-py>=2.1",
    "numpy>=1.26",
    "scipy>=1.11",  # Welch's t-tests of the sweeps' reports (also a dependency of jax)
    "pillow>=10",
    "matplotlib>=3.8",
    "tqdm>=4.60",  # train_and_evaluate(progress_bar=True) in notebooks
]

setup(
    name="adejax",
    version="0.1.0",
    description="AV-ADE and hybrid likelihood-adversarial generative models in JAX/Flax",
    packages=find_packages(include=["adejax", "adejax.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    # notebooks are executed by the tests (nbclient, in an ipykernel)
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3.8", "nbclient>=0.10", "nbformat>=5.10",
                             "ipykernel>=6.29", "ruff>=0.8"]},
)
