"""adejax: hybrid likelihood-adversarial generative image models (AV-ADE and relatives) in JAX/Flax."""
import os as _os

# TensorFlow is only used for tfds/clu on the host; keep its C++ start-up chatter out of the user's log.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # TF only decodes/resizes images here

# tfp (under distrax) must load before TensorFlow: once TensorFlow is imported, tfp's package init
# insists on tf_keras, which would drag in a second TensorFlow. Importing distrax first avoids it.
import distrax as _distrax  # noqa: E402,F401

__version__ = "0.1.0"
