"""Table 9 of papers/002: capacity of f_psi (scales x residual blocks) for AV-ADE and V-ADE on CIFAR-10.

  python -m adejax.sweep --experiment=experiments/flow_capacity.py --workdir=DIR [--scale=small]

Residual architectures of Table 6. The AV-ADE models first train by maximum likelihood, then switch on
the adversarial loss (loss.adv_start_step, here at 40% of training).
"""
from adejax import sweep

AV_ADE = {(1, 2): (3.77, 7.9, 20.1), (2, 2): (3.48, 6.9, 27.7), (2, 4): (3.46, 6.9, 28.9),
          (3, 3): (3.49, 6.5, 31.7)}
V_ADE = {(1, 2): (3.52, 3.0, 112.0), (2, 2): (3.41, 4.5, 85.5), (3, 2): (3.45, 4.4, 78.7),
         (4, 1): (3.49, 4.1, 82.4)}


def get_experiment(scale: str):
  members = []
  for mode, table in (("v-ade", V_ADE), ("av-ade", AV_ADE)):
    for (scales, blocks), (bpd, is_, fid) in table.items():
      c = sweep.paper_config(mode, rd=True)
      c.model.arch = "resnet"
      c.model.flow_scales, c.model.flow_blocks = scales, blocks
      if mode == "av-ade":
        c.loss.adv_start_step = int(0.4 * c.train.num_steps)
      members.append(sweep.Member(f"{mode}_s{scales}_b{blocks}", sweep.apply_scale(c, scale),
                                  {"bpd": bpd, "is": is_, "fid": fid}))
  return members
