"""Table 2 of papers/002: refinements rd, wg, iaf, s2 on CIFAR-10.

  python -m adejax.sweep --experiment=experiments/refinements.py --workdir=DIR [--scale=small]
"""
from adejax import sweep

ROWS = {  # name: (mode, refinements, paper BPD / IS / FID)
    "gan_rd": ("gan", dict(rd=True), {"bpd": 6.9, "is": 7.4, "fid": 24.0}),
    "av-ade": ("av-ade", {}, {"bpd": 3.9, "is": 7.1, "fid": 28.0}),
    "av-ade_rd": ("av-ade", dict(rd=True), {"bpd": 3.8, "is": 7.5, "fid": 26.0}),
    "av-ade_wg_rd": ("av-ade", dict(wg=True, rd=True), {"bpd": 3.8, "is": 8.2, "fid": 17.2}),
    "av-ade_iaf_rd": ("av-ade", dict(iaf=True, rd=True), {"bpd": 3.7, "is": 8.1, "fid": 18.6}),
    "av-ade_s2": ("av-ade", dict(s2=True), {"bpd": 3.5, "is": 6.9, "fid": 28.9}),
}


def get_experiment(scale: str):
  return [sweep.Member(name, sweep.apply_scale(sweep.paper_config(mode, **ref), scale), paper)
          for name, (mode, ref, paper) in ROWS.items()]
