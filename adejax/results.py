"""The results of a sweep: one row per member (its done.json metrics, the family's mode column, the
paper's numbers beside ours), written as results.csv / results.md, combined across sweeps, summarised
over seed groups (mean ± std), and reported (`write_report`: a markdown table, a scatter plot and a
discussion kept across regenerations); and learning curves, one row per member and evaluated step
(`write_curve_report`, with the step from which each curve is flat). `adejax.sweep` writes them;
notebooks read them back (`load_results`)."""
from __future__ import annotations

import csv
import json
import os

import numpy as np

from adejax import config_lib, families, reporting
from adejax.experiment import Member, generator_param_count


def collect(members: list[Member], workdir: str) -> list[dict]:
  rows = []
  for m in members:
    path = os.path.join(workdir, m.name, "done.json")
    ours = json.load(open(path)) if os.path.exists(path) else {}
    family = families.family_class(m.config)
    if m.bpd_from or not family.has_likelihood(m.config):  # e.g. a GAN's own ELBO (untrained encoder)
      ours = {k: v for k, v in ours.items() if k not in ("bpd_elbo", "bpd_iwae")}
      other = os.path.join(workdir, m.bpd_from, "done.json")
      if m.bpd_from and os.path.exists(other):  # the bound of its BPD-for-a-GAN run
        ours.update({k: v for k, v in json.load(open(other)).items() if k in ("bpd_elbo", "bpd_iwae")})
    mode = family.results_mode(m.config)
    rows.append({"member": m.name, "mode": mode, **({"group": m.group} if m.group else {}), **ours,
                 **{f"paper_{k}": v for k, v in m.paper.items()}})
  write_results(rows, os.path.join(workdir, "results"))
  return rows


def restore_reported(members: list[Member], workdir: str, report_csv: str) -> list[str]:
  """Members finished in a report's rows (`report_csv`, e.g. a committed docs/results/NAME.csv, or a
  learning curve's, whose row at a stage is the member at that budget) whose workdir has no done.json
  (another machine, a deleted workdir): their done.json is written back from the row, so the sweep
  skips them and collects the same row. A row counts only when its `step` is the member's
  train.num_steps (a member whose budget changed trains again). Returns their names."""
  if not os.path.exists(report_csv):
    return []
  budgets = {m.name: int(m.config.train.num_steps) for m in members}
  rows = {r["member"]: r for r in load_results(report_csv) if r.get("step") == budgets.get(r.get("member"))}
  restored = []
  for m in members:
    done, row = os.path.join(workdir, m.name, "done.json"), rows.get(m.name)
    if os.path.exists(done) or not row:
      continue
    metrics = {k: v for k, v in row.items()  # a curve's train_seconds: training to that stage
               if k not in ("member", "mode", "group", "source") and not k.startswith("paper_")}
    metrics.setdefault("generator_params", generator_param_count(m.config))
    os.makedirs(os.path.dirname(done), exist_ok=True)
    reporting.write_json(done, {**metrics, "restored_from": report_csv})
    restored.append(m.name)
  return restored


RESULT_KEYS = ["member", "mode", "source", "bpd_elbo", "bpd_iwae", "fid_domain", "is_domain", "prd_auc_domain",
               "wasserstein_critic", "nonfinite_sample_fraction",
               "modes", "modes_kl", "modes_real", "modes_kl_real", "mode_classifier_accuracy",
               "gan_test_domain", "gan_train_domain", "fid", "is", "generator_params", "step", "train_seconds",
               "eval_seconds", "paper_bpd",
               "paper_is", "paper_fid", "paper_modes", "paper_modes_kl", "paper_gan_test", "paper_gan_train"]


def write_rows(rows: list[dict], path: str, keys: list[str] | None = None) -> str:
  """rows as a CSV that `load_results` reads back: columns `keys` (default: every key, in order of
  first appearance), written to this process's temporary file and renamed (a reader never sees half a
  file, and two sweeps writing one report do not collide)."""
  keys = keys if keys is not None else list(dict.fromkeys(k for r in rows for k in r))
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
  os.replace(tmp, path)
  return path


def write_results(rows: list[dict], stem: str) -> str:
  """stem.csv (every row, for `load_results`) and stem.md (the table, with a mean ± std summary per
  seed group); returns the table's text."""
  keys = [k for k in RESULT_KEYS if any(k in r for r in rows)]
  write_rows(rows, stem + ".csv", ["group"] * any("group" in r for r in rows) + keys)
  text = markdown_table(rows, keys)
  summary = group_summary(rows, keys)
  if summary:
    text = ("Mean ± standard deviation over each group's members (seeds):\n\n"
            + markdown_table(summary, ["group", "runs"] + keys[2:]) + "\nEach run:\n\n" + text)
  with open(stem + ".md", "w") as f:
    f.write(text)
  return text


def combine(paths: list[str]) -> list[dict]:
  """The rows of several sweeps' results (workdirs or CSVs, e.g. docs/results/*.csv) in one list, each
  row's `source` the file (or workdir) it came from: one table and one plot across experiments."""
  rows = []
  for path in paths:
    source = os.path.basename(os.path.normpath(path))
    source = source[:-4] if source.endswith(".csv") else source
    rows += [{**r, "source": source} for r in load_results(path)]
  return rows


def load_results(path: str) -> list[dict]:
  """The rows of a sweep's results.csv (a sweep workdir, or the CSV itself, e.g. one in docs/results),
  numbers as floats: what `collect` wrote, for tables and plots in notebooks."""
  if os.path.isdir(path):
    path = os.path.join(path, "results.csv")
  if not os.path.exists(path):
    raise config_lib.ConfigError(f"No results at {path}: run the sweep (or --collect_only) first.")

  def value(v: str):
    for kind in (int, float):
      try:
        return kind(v)
      except ValueError:
        pass
    return v

  with open(path, newline="") as f:
    return [{k: value(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _fmt(v) -> str:
  return f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v))


def markdown_table(rows: list[dict], keys: list[str]) -> str:
  lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
  lines += ["| " + " | ".join(_fmt(r.get(k)) for k in keys) + " |" for r in rows]
  return "\n".join(lines) + "\n"


def group_summary(rows: list[dict], keys: list[str]) -> list[dict]:
  """One row per group: "mean ± std" of each numeric metric over the group's finished members."""
  groups: dict[str, list[dict]] = {}
  for r in rows:
    if r.get("group") and "step" in r:
      groups.setdefault(r["group"], []).append(r)
  out = []
  for name, members in groups.items():
    row = {"group": name, "runs": len(members)}
    for k in keys:
      values = [r[k] for r in members if isinstance(r.get(k), (int, float))]
      if values and not k.startswith("paper_") and k != "step":
        row[k] = f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else _fmt(values[0])
      elif values:
        row[k] = values[0]
    out.append(row)
  return out


DISCUSSION_MARKER = "<!-- discussion: kept when the report is regenerated -->"


def scatter_plot(rows: list[dict], path: str, x: str = "bpd_elbo", y: str = "fid_domain") -> str:
  """Coverage (bits/dim) against quality (FID), one labelled point per member; with a second panel
  against modes covered when the runs were evaluated on a stacked dataset. Members that are a paper's
  model (with paper numbers) are drawn as stars; members without a likelihood (no bits/dim: the GANs
  and hybrids of papers/004) stand in a strip right of the others, marked "no likelihood"."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  panels = [(y, f"{y} (lower = better quality)")]
  if any("modes" in r for r in rows):
    panels.append(("modes", "modes covered of 1000 (higher = better coverage)"))
  xs = [r[x] for r in rows if isinstance(r.get(x), (int, float))]
  strip = (max(xs) + 0.15 * (max(xs) - min(xs) + 1.0)) if xs else 0.0
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
  for ax, (key, label) in zip(axes[0], panels):
    unplaced = sorted((r for r in rows if key in r and x not in r), key=lambda r: r[key])
    for r in rows:
      if key in r and x in r:
        paper = any(k.startswith("paper_") for k in r)
        ax.scatter(r[x], r[key], marker="*" if paper else "o", s=120 if paper else 30)
        ax.annotate(r["member"], (r[x], r[key]), textcoords="offset points", xytext=(5, 5), fontsize=7)
    for i, r in enumerate(unplaced):  # labels alternate sides so that close values stay readable
      side = 1 if i % 2 == 0 else -1
      ax.scatter(strip, r[key], s=30, c="tab:gray")
      ax.annotate(r["member"], (strip, r[key]), textcoords="offset points", xytext=(5 * side, 0),
                  ha="left" if side > 0 else "right", va="center", fontsize=7)
    if unplaced:
      ax.axvline((max(xs) + strip) / 2 if xs else strip, ls=":", c="gray")
      ax.annotate("no likelihood", (strip, 1.0), xycoords=("data", "axes fraction"), ha="center",
                  va="top", fontsize=7, color="gray")
    ax.set(xlabel=f"{x} (held-out, upper bound; lower = better coverage)", ylabel=label,
           title="coverage vs quality" if key == y else "likelihood vs modes")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def welch(a, b) -> tuple[float, float, float]:
  """Welch's unequal-variance t-test of two samples: (t, degrees of freedom, two-sided p)."""
  from scipy import stats

  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
  if va + vb == 0:  # every run of both alike (e.g. all 1000 modes): no spread to test against
    same = a.mean() == b.mean()
    return (0.0 if same else float(np.sign(a.mean() - b.mean()) * np.inf), float("nan"), 1.0 if same else 0.0)
  t = (a.mean() - b.mean()) / np.sqrt(va + vb)
  df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
  return float(t), float(df), float(2 * stats.t.sf(abs(t), df))


COMPARED = ("modes", "modes_kl", "fid_domain", "bpd_elbo")


def welch_table(rows: list[dict], pairs, metrics=COMPARED) -> str:
  """A markdown table comparing pairs of seed groups (`pairs`: (group a, group b)) on each metric both
  have for at least two finished members: mean ± std (ddof = 0, as `group_summary`) of each, and
  Welch's t and two-sided p. "" if no pair can be compared yet."""
  lines = []
  for a, b in pairs:
    for k in metrics:
      x, y = ([r[k] for r in rows if r.get("group") == g and isinstance(r.get(k), (int, float))] for g in (a, b))
      if len(x) < 2 or len(y) < 2:
        continue
      t, df, p = welch(x, y)
      lines.append(f"| {a} vs {b} | {k} | {np.mean(x):.3f} ± {np.std(x):.3f} ({len(x)}) | "
                   f"{np.mean(y):.3f} ± {np.std(y):.3f} ({len(y)}) | {t:.2f} | {df:.1f} | {p:.3g} |")
  if not lines:
    return ""
  return "\n".join(["| comparison | metric | a: mean ± std (runs) | b: mean ± std (runs) | Welch t | df | p |",
                    "|---|---|---|---|---|---|---|", *lines]) + "\n"


def compute_line(rows: list[dict]) -> str:
  """What the finished members cost: their training and evaluation seconds summed (each member on its
  own share of the CPUs, one core under --jobs=2 on 2 cores), in core-hours; "" if no row has them."""
  timed = [r for r in rows if isinstance(r.get("train_seconds"), (int, float))]
  if not timed:
    return ""
  train_h = sum(r["train_seconds"] for r in timed) / 3600
  eval_h = sum(r.get("eval_seconds") or 0.0 for r in timed) / 3600
  untimed = [r["member"] for r in rows if r not in timed and r.get("step")]
  return (f"\nCompute: {len(timed)} timed members, {train_h:.2f} hours training + {eval_h:.2f} evaluating "
          f"(train_seconds, eval_seconds: wall seconds on each member's own CPUs)"
          + (f"; not timed: {', '.join(untimed)}" if untimed else "") + ".\n")


def write_report(rows: list[dict], stem: str, command: str, comparisons=()) -> str:
  """stem.md (command, results table, Welch tests of the `comparisons`' group pairs), stem.csv (the
  rows, for `load_results` and notebooks) and stem.png (scatter); text below the discussion marker of
  an existing stem.md is kept."""
  discussion = ""
  if os.path.exists(stem + ".md"):
    text = open(stem + ".md").read()
    if DISCUSSION_MARKER in text:
      discussion = text.split(DISCUSSION_MARKER, 1)[1]
  table = write_results(rows, stem)
  tests = welch_table(rows, comparisons)
  if tests:
    table += "\nWelch's t-tests between groups (seeds):\n\n" + tests
  table += compute_line(rows)
  plot = scatter_plot(rows, stem + ".png")
  body = (f"# {os.path.basename(stem)}\n\nRegenerate with:\n\n```bash\n{command}\n```\n\n{table}\n"
          f"![coverage vs quality]({os.path.basename(plot)})\n\n{DISCUSSION_MARKER}{discussion}")
  with open(stem + ".md", "w") as f:
    f.write(body)
  return stem + ".md"


# ----------------------------------------------------------------------------- learning curves
CURVE_KEYS = ["member", "group", "step", "train_seconds", "eval_seconds", "fid_domain", "modes", "modes_kl",
              "bpd_elbo", "is_domain", "prd_auc_domain", "recon_accuracy_domain", "active_units",
              "nonfinite_sample_fraction", "modes_real", "modes_kl_real"]
CURVE_METRICS = {"fid_domain": False, "modes": True}  # metric -> whether higher is better
FLAT_TOLERANCE = 0.10  # a curve is flat from the step s after which no doubling of steps made it 10% better


def flat_from(curve: dict[int, float], higher_is_better: bool, tolerance: float = FLAT_TOLERANCE):
  """The first step s of `curve` ({step: value}) from which it stays flat: at s and at every later step
  t whose half t/2 the curve also has, the metric is less than `tolerance` (relative) better than at
  half the steps. None if the curve has no such doubling (not flat yet, or no doubling at all). A
  curve that pauses and then improves again is not flat at the pause."""
  gains = {s: _gain(curve, s, higher_is_better) for s in sorted(curve)}
  doublings = [s for s, g in gains.items() if g is not None]
  for i, s in enumerate(doublings):
    if all(gains[t] < tolerance for t in doublings[i:]):
      return s
  return None


def _gain(curve: dict[int, float], s: int, higher_is_better: bool):
  """How much better (relative) the metric is at step s than at s/2; None if the curve lacks s/2."""
  half = curve.get(s / 2) if s % 2 == 0 else None
  if not half:
    return None
  return ((curve[s] - half) if higher_is_better else (half - curve[s])) / abs(half)


def last_doubling_gain(curve: dict[int, float], higher_is_better: bool):
  """How much better (relative) the metric is at the curve's last step s than at s/2 (None without s/2):
  whether the curve's end is flat."""
  return _gain(curve, max(curve), higher_is_better) if curve else None


def curve_rows(members: list[Member], workdir: str, committed: str) -> list[dict]:
  """Every member's learning-curve rows: from its workdir's curve.csv where it has one (this machine's
  run), else from the committed report `committed` (a run finished or begun elsewhere)."""
  kept = load_results(committed) if os.path.exists(committed) else []
  rows = []
  for m in members:
    path = os.path.join(workdir, m.name, "curve.csv")
    mine = load_results(path) if os.path.exists(path) else [r for r in kept if r.get("member") == m.name]
    if not families.family_class(m.config).has_likelihood(m.config):  # as `collect`: no ELBO of its own
      mine = [{k: v for k, v in r.items() if k not in ("bpd_elbo", "bpd_iwae")} for r in mine]
    rows += [{**r, "member": m.name, **({"group": m.group} if m.group else {})}
             for r in sorted(mine, key=lambda r: r["step"])]
  return rows


def curve_plot(rows: list[dict], path: str) -> str:
  """One panel per curve metric (fid_domain; modes on stacked data) against training steps, one line
  per member."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  panels = [k for k in CURVE_METRICS if any(k in r for r in rows)]
  fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.5 * max(1, len(panels)), 4.2), squeeze=False)
  for ax, key in zip(axes[0], panels):
    for name in dict.fromkeys(r["member"] for r in rows):
      points = [(r["step"], r[key]) for r in rows if r["member"] == name and key in r]
      if points:
        ax.plot(*zip(*points), marker="o", ms=3, label=name)
    better = "higher" if CURVE_METRICS[key] else "lower"
    ax.set(xlabel="training steps", ylabel=f"{key} ({better} = better)", title=key)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def write_curve_report(members: list[Member], workdir: str, stem: str, command: str) -> str:
  """stem.csv (every member's curve rows, `curve_rows`), stem.png (`curve_plot`) and stem.md (the
  command, where each curve is flat by `flat_from`, each member's table, and the discussion below the
  marker kept across regenerations)."""
  rows = curve_rows(members, workdir, stem + ".csv")
  discussion = ""
  if os.path.exists(stem + ".md"):
    text = open(stem + ".md").read()
    if DISCUSSION_MARKER in text:
      discussion = text.split(DISCUSSION_MARKER, 1)[1]
  keys = [k for k in CURVE_KEYS if any(k in r for r in rows)]  # the tables' columns; the CSV has every metric
  write_rows(rows, stem + ".csv", keys + [k for k in dict.fromkeys(k for r in rows for k in r) if k not in keys])
  plot = curve_plot(rows, stem + ".png")
  flat = ["| member | last step | " + " | ".join(f"{k} flat from | {k} gain over the last doubling"
                                                for k in CURVE_METRICS) + " |",
          "|---|---|" + "---|---|" * len(CURVE_METRICS)]
  tables = []
  for name in dict.fromkeys(r["member"] for r in rows):
    mine = [r for r in rows if r["member"] == name]
    cells = []
    for key, higher in CURVE_METRICS.items():
      curve = {r["step"]: r[key] for r in mine if key in r}
      s, gain = flat_from(curve, higher), last_doubling_gain(curve, higher)
      cells.append("-" if not curve else ("not yet" if s is None else str(s)))
      cells.append("-" if gain is None else f"{gain:+.1%}")
    flat.append(f"| {name} | {mine[-1]['step']} | " + " | ".join(cells) + " |")
    tables.append(f"### {name}\n\n" + markdown_table(mine, [k for k in keys if k not in ("member", "group")]))
  body = (f"# {os.path.basename(stem)}\n\nRegenerate (and resume) with:\n\n```bash\n{command}\n```\n\n"
          f"Flat from: the first step s from which no doubling of the steps made the metric {FLAT_TOLERANCE:.0%} "
          f"better: at s and every later step t, it is less than that much better than at t/2 (`results.flat_from`); the gain over the last doubling says whether the curve's end is flat "
          f"too (`results.last_doubling_gain`: positive = better).\n\n" + "\n".join(flat) + "\n\n"
          f"![learning curves]({os.path.basename(plot)})\n\n" + "\n".join(tables) + f"\n{DISCUSSION_MARKER}{discussion}")
  with open(stem + ".md", "w") as f:
    f.write(body)
  return stem + ".md"
