"""The paper's experiments: every member loads, validates and builds at every scale (one step of each
family and mode: tests/test_configs.py); the sweep runner skips finished members and collects results."""
import glob
import os
import re
import subprocess
import sys

import pytest

from adejax import config_lib, experiment, reporting, results, sweep, train
from configs import default

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = sorted(p for p in glob.glob(os.path.join(ROOT, "experiments", "*.py"))
                     if "def get_experiment" in open(p).read())  # sweeps (not the runnable studies)


@pytest.fixture(scope="module")
def ablation():
  return experiment.load_experiment(os.path.join(ROOT, "experiments", "ablation.py"), "tiny")


@pytest.mark.parametrize("path", EXPERIMENTS, ids=os.path.basename)
def test_every_member_loads_validates_and_builds(path):
  members = experiment.load_experiment(path, "tiny")
  assert members and len({m.name for m in members}) == len(members)
  for m in members:
    config_lib.validate(m.config)
    assert experiment.generator_param_count(m.config) > 0
  full = experiment.load_experiment(path, "full")  # the paper-scale configs validate too
  assert all(m.config.train.num_steps >= 100_000 for m in full)
  # and the 2-core CPU ones: at least one per paper model (a full-scale grid is one group)
  assert len(experiment.load_experiment(path, "small")) >= len({m.group or m.name for m in full})
  assert len(experiment.load_experiment(path, "medium")) >= len({m.group or m.name for m in full})


def test_a_medium_runs_schedule_does_not_depend_on_its_budget(monkeypatch):
  """At medium scale the phase switch points are a 2000-step run's whatever the budget, so a learning
  curve (one run evaluated every 1000 steps) is the curve of the budget's model: two budgets' configs
  differ in train.num_steps alone (papers/003's phases are a share of the budget, as at small scale)."""
  from experiments import stacked

  before = {m.name: m.config for m in stacked.get_experiment("medium")}
  monkeypatch.setattr(stacked, "MEDIUM_STEPS", 3 * stacked.MEDIUM_STEPS)
  for m in stacked.get_experiment("medium"):
    changed = config_lib.differences(before[m.name], m.config)
    phases = ["glow_vae.phase1_steps"] if m.config.model.family == "glow_vae" else []
    assert [c.split(":")[0] for c in changed] == phases + ["train.num_steps"], (m.name, changed)
  ade = before["av-ade_s0"]
  assert ade.loss.flow_start_step == experiment.MEDIUM_SCHEDULE_STEPS // 2 and ade.train.batch_size == 64


def test_ablation_matches_parameter_counts(ablation):
  counts = {m.name: experiment.generator_param_count(m.config) for m in ablation}
  print("Table 1 generator parameters at tiny scale:", counts)
  for name in ("v-ade", "av-ade"):
    assert abs(counts[name] - counts["vae"]) / counts["vae"] < 0.05
  small = {m.name: m for m in experiment.load_experiment(os.path.join(ROOT, "experiments", "ablation.py"), "small")}
  vae, ade = (experiment.generator_param_count(small[n].config) for n in ("vae", "av-ade"))
  print(f"small scale: VAE {vae:,} vs AV-ADE {ade:,} parameters ({100 * (ade - vae) / vae:+.2f}%)")
  assert abs(ade - vae) / vae < 0.014


def test_sweep_skips_finished_members_and_collects(tmp_path, monkeypatch):
  from test_input_pipeline import make_idx_dir

  make_idx_dir(tmp_path, n_train=40, n_test=16)
  members = []
  for name in ("av-ade", "vae"):
    c = default.get_config("tiny")
    c.mode, c.data.idx_dir = name, str(tmp_path)
    c.eval.num_fid_samples, c.eval.classifier_steps = 16, 5
    c.eval.feature_cache_dir = str(tmp_path / "cache")
    members.append(experiment.Member(name, c, {"bpd": 3.9 if name == "av-ade" else 4.4}))
  root = str(tmp_path / "sweep")
  os.makedirs(os.path.join(root, "vae"))
  sweep.reporting.write_json(os.path.join(root, "vae", "done.json"), {"bpd_elbo": 9.5, "step": 4})
  ran = sweep.run_member(members[0], os.path.join(root, "av-ade"))
  assert ran["step"] == 4 and "fid_domain" in ran and ran["generator_params"] > 0
  assert ran["train_seconds"] > 0 and ran["eval_seconds"] > 0  # what the member cost

  def must_not_train(*args):
    raise AssertionError("a finished member was trained again")

  monkeypatch.setattr(train, "train", must_not_train)
  for m in members:
    sweep.run_member(m, os.path.join(root, m.name))
  members.append(experiment.Member("from_vae", members[1].config, bpd_from="vae"))
  gan = default.get_config("tiny")
  gan.mode = "gan"
  members.append(experiment.Member("gan", gan))
  sweep.reporting.write_json(os.path.join(root, "gan", "done.json"), {"bpd_elbo": 1e5, "fid_domain": 9.0})
  rows = results.collect(members, root)
  assert [r["member"] for r in rows] == ["av-ade", "vae", "from_vae", "gan"]
  assert rows[2]["bpd_elbo"] == 9.5  # a GAN row takes its bits/dim from its gan_bpd member
  assert "bpd_elbo" not in rows[3] and rows[3]["fid_domain"] == 9.0  # and never its own ELBO
  assert rows[1]["bpd_elbo"] == 9.5 and rows[0]["paper_bpd"] == 3.9
  table = open(os.path.join(root, "results.md")).read()
  assert "paper_bpd" in table and "fid_domain" in table
  assert open(os.path.join(root, "results.csv")).read().startswith("member,mode,bpd_elbo")


def test_print_commands_one_line_per_member(tmp_path):
  out = subprocess.run([sys.executable, "-m", "adejax.sweep", "--experiment=experiments/refinements.py",
                        f"--workdir={tmp_path}", "--scale=tiny", "--print_commands"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  lines = [l for l in out.stdout.splitlines() if l.startswith("python -m adejax.sweep")]
  assert out.returncode == 0, out.stderr[-2000:]
  assert len(lines) == 7 and lines[0].endswith("--only=gan_rd") and lines[-1].endswith("--collect_only")


def _experiment_file(tmp_path, name: str, body: str):
  """An experiment file whose members train on a tiny IDX dataset at tmp_path/idx (its path: {idx})."""
  from test_input_pipeline import make_idx_dir

  (tmp_path / "idx").mkdir()
  make_idx_dir(tmp_path / "idx", n_train=40, n_test=16)
  path = tmp_path / name
  path.write_text("from adejax import experiment\nfrom configs import default\n\n"
                  + body.replace("{idx}", repr(str(tmp_path / "idx"))))
  return path


def test_jobs_run_members_side_by_side_each_on_its_own_cpus(tmp_path):
  """--jobs=2: each member in its own process on its share of the CPUs, with its own log; a member that
  fails is named (exit 2) while the others finish and are collected."""
  experiment_file = _experiment_file(tmp_path, "two.py", f"""
def get_experiment(scale):
  members = []
  for name, idx in (("vae", {{idx}}), ("no_data", {str(tmp_path / "missing")!r})):
    c = default.get_config("tiny")
    c.mode, c.data.idx_dir, c.eval.num_fid_samples = "vae", idx, 0
    members.append(experiment.Member(name, c))
  return members
""")
  root = tmp_path / "sweep"
  out = subprocess.run([sys.executable, "-m", "adejax.sweep", f"--experiment={experiment_file}",
                        f"--workdir={root}", "--scale=tiny", "--jobs=2"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 2, out.stderr[-3000:]
  assert "members failed: no_data" in out.stderr.splitlines()[-1]
  assert (root / "vae" / "done.json").exists() and not (root / "no_data" / "done.json").exists()
  assert "| vae |" in (root / "results.md").read_text()  # the finished member is collected
  logs = {n: (root / "logs" / f"{n}.log").read_text() for n in ("vae", "no_data")}
  assert "adejax.sweep: error:" in logs["no_data"]  # the member's own one-line error
  slices = sweep.cpu_slices(2) if len(os.sched_getaffinity(0)) >= 2 else None
  if slices:  # each member's process ran on its own slice
    pinned = [next(l for l in logs[n].splitlines() if "Member process on CPUs" in l) for n in logs]
    assert sorted(p.split("CPUs ")[1].split(" (")[0] for p in pinned) == sorted(map(str, slices))
  with pytest.raises(sweep.config_lib.ConfigError, match="--jobs=99"):
    sweep.cpu_slices(99)


def test_sigterm_stops_a_jobs_sweep_after_its_members_checkpoint_and_a_relaunch_resumes_it(tmp_path):
  """SIGTERM to a --jobs sweep reaches its running members: each saves a checkpoint of its step, and the
  sweep exits 0 saying how to resume, leaving no member process behind. The same command again skips
  the member that had finished and resumes the stopped one from its checkpoint to the end."""
  import signal
  import time

  experiment_file = _experiment_file(tmp_path, "long.py", """
def get_experiment(scale):
  short, long = default.get_config("tiny"), default.get_config("tiny")
  for c, steps in ((short, 2), (long, 60)):
    c.mode, c.data.idx_dir = "vae", {idx}
    c.train.num_steps, c.train.log_every = steps, 1
  return [experiment.Member("short", short), experiment.Member("long", long)]
""")
  root = tmp_path / "sweep"
  command = [sys.executable, "-m", "adejax.sweep", f"--experiment={experiment_file}", f"--workdir={root}",
             "--scale=tiny", "--jobs=2"]
  parent = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  log, deadline = root / "logs" / "long.log", time.time() + 300
  while not ((root / "short" / "done.json").exists() and log.exists() and "train/" in log.read_text()):
    assert time.time() < deadline and parent.poll() is None, parent.communicate()[1][-2000:]
    time.sleep(0.5)
  parent.send_signal(signal.SIGTERM)
  _, err = parent.communicate(timeout=120)
  assert parent.returncode == 0, err[-2000:]
  stopped = re.search(r"running members \(([^)]*)\) saved", err)
  assert "stopped by SIGTERM" in err and stopped and "long" in stopped.group(1) and "again to resume" in err
  assert "stopped by SIGTERM at step" in log.read_text()  # the member's own checkpoint message
  stopped_at = max(int(n) for n in os.listdir(root / "long" / "checkpoints") if n.isdigit())
  assert stopped_at < 60 and not (root / "long" / "done.json").exists()
  leftover = subprocess.run(["pgrep", "-f", "--", f"--workdir={root}"], capture_output=True, text=True)
  assert leftover.returncode == 1, f"member processes left running: {leftover.stdout}"

  finished = (root / "short" / "done.json").stat().st_mtime_ns
  again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-2000:]
  assert (root / "short" / "done.json").stat().st_mtime_ns == finished  # skipped, not run again
  assert (root / "long" / "done.json").exists()
  assert f"Resumed from step {stopped_at} " in log.read_text()  # the relaunch's log of the member


def test_report_keeps_the_discussion(tmp_path):
  root = str(tmp_path)
  with open(os.path.join(root, "results.md"), "w") as f:
    f.write("| member | bpd_elbo |\n|---|---|\n| vae | 4.0 |\n")
  with open(os.path.join(root, "results.csv"), "w") as f:
    f.write("member,bpd_elbo,fid_domain,paper_fid\nvae,4.0,30.0,\nav-ade,4.2,10.0,28.0\n")
  rows = [{"member": "vae", "bpd_elbo": 4.0, "fid_domain": 30.0},
          {"member": "av-ade", "bpd_elbo": 4.2, "fid_domain": 10.0, "paper_fid": 28.0}]
  stem = os.path.join(root, "docs", "ablation_small")
  results.write_report(rows, stem, "python -m adejax.sweep ...")
  with open(stem + ".md", "a") as f:
    f.write("\nOur reading of the numbers.\n")
  results.write_report(rows, stem, "python -m adejax.sweep ...")
  text = open(stem + ".md").read()
  assert text.count("Our reading of the numbers.") == 1 and "| vae | 4.000 |" in text
  assert os.path.getsize(stem + ".png") > 1000
  assert results.load_results(stem + ".csv") == rows == results.load_results(root)  # for notebooks


def test_reports_of_several_sweeps_combine_into_one_table_and_plot(tmp_path):
  """`--combine`: rows of two experiments' CSVs in one report, each row tagged with its source; a member
  without bits/dim (a GAN, a hybrid) still gets its row and its point in the plot."""
  root = str(tmp_path)
  with open(os.path.join(root, "ablation_small.csv"), "w") as f:
    f.write("member,mode,bpd_elbo,fid_domain\nav-ade,av-ade,5.3,250.8\n")
  with open(os.path.join(root, "hybrids_small.csv"), "w") as f:
    f.write("member,mode,bpd_elbo,fid_domain,wasserstein_critic\naae,hybrid/aae,,159.0,9.9\n")
  rows = results.combine([os.path.join(root, "ablation_small.csv"), os.path.join(root, "hybrids_small.csv")])
  assert rows == [{"member": "av-ade", "mode": "av-ade", "bpd_elbo": 5.3, "fid_domain": 250.8,
                   "source": "ablation_small"},
                  {"member": "aae", "mode": "hybrid/aae", "fid_domain": 159.0, "wasserstein_critic": 9.9,
                   "source": "hybrids_small"}]
  stem = os.path.join(root, "all_small")
  text = open(results.write_report(rows, stem, "python -m adejax.sweep --combine=...")).read()
  assert "| av-ade | av-ade | ablation_small | 5.300 | 250.800 |  |" in text
  assert "| aae | hybrid/aae | hybrids_small |  | 159.000 | 9.900 |" in text
  assert results.load_results(stem + ".csv") == rows
  assert os.path.getsize(stem + ".png") > 1000


def test_seed_groups_are_summarised_as_mean_and_std(tmp_path):
  root = str(tmp_path)
  members = [experiment.Member(f"vae_s{i}", default.get_config("tiny"), group="vae") for i in range(2)]
  members.append(experiment.Member("gan_s0", default.get_config("tiny"), {"modes": 78.9}, group="gan"))
  for i, (modes, kl) in enumerate(((10, 2.0), (20, 1.0))):
    sweep.reporting.write_json(os.path.join(root, f"vae_s{i}", "done.json"),
                               {"modes": modes, "modes_kl": kl, "step": 4, "bpd_elbo": 5.0})
  rows = results.collect(members, root)  # gan_s0 has not run: no summary row of numbers for it
  assert [r["group"] for r in rows] == ["vae", "vae", "gan"]
  (summary,) = results.group_summary(rows, ["modes", "modes_kl", "bpd_elbo", "paper_modes"])
  assert summary == {"group": "vae", "runs": 2, "modes": "15.000 ± 5.000", "modes_kl": "1.500 ± 0.500",
                     "bpd_elbo": "5.000 ± 0.000"}
  text = open(os.path.join(root, "results.md")).read()
  assert "| vae | 2 |" in text and "15.000 ± 5.000" in text and "| vae_s1 |" in text
  results.scatter_plot(rows, os.path.join(root, "plot.png"))
  assert os.path.getsize(os.path.join(root, "plot.png")) > 1000


def test_marginal_kl_table_is_per_latent_with_the_papers_datasets_in_their_own_columns(tmp_path):
  """papers/004 Table 1 reports nats per latent: the experiment's table divides each estimate by d.
  Its rows are Fashion-MNIST, which the paper does not report: the paper's values stand in one column
  per dataset (ColorMNIST, CelebA, CIFAR-10), blank where it has no row with that many latents, and no
  member carries them as its reference."""
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments"))
  import marginal_kl_latents as exp

  kl = {"average_kl": 25.0, "marginal_kl_monte_carlo": 10.0, "marginal_kl_density_ratio": 5.0,
        "marginal_kl_density_model": 12.5, "marginal_kl_density_model_maf": 15.0,
        "marginal_kl_lower_bound": 20.0, "latent_dim": 50}
  sweep.reporting.write_json(os.path.join(tmp_path, "vae-z50", "eval", "marginal_kl.json"), kl)
  lines = exp.table(str(tmp_path), "small", estimate=False).splitlines()
  assert len(lines) == 3  # the other members have not run
  assert "paper ColorMNIST (avg / MC) | paper CelebA (avg / MC) | paper CIFAR-10 (avg / MC)" in lines[0]
  assert lines[2] == "| vae-z50 | 50 | 0.500 | 0.200 | 0.100 | 0.250 | 0.300 | 0.400 | 0.468 / 0.244 |  |  |"
  assert exp.paper_cells(200) == ["", "0.575 / 0.514", "0.221 / 0.164"]
  assert all(m.paper == {} for m in exp.get_experiment("small"))


def test_jobs_start_a_member_only_after_the_member_it_starts_from(tmp_path):
  """--jobs: ablation's gan_bpd starts from gan's checkpoint ("../gan"), so it waits until gan is done
  (it used to start beside gan and fail at once)."""
  from configs import cifar_vae, default

  gan = default.get_config("tiny")
  gan.mode = "gan"
  members = [experiment.Member("gan", gan), experiment.Member("gan_bpd", cifar_vae.around_gan(gan, "tiny")),
             experiment.Member("vae", default.get_config("tiny"))]  # as experiments/ablation.py builds them
  by_name = {m.name: m for m in members}
  workdir = str(tmp_path)
  assert sweep.prerequisites(by_name["gan_bpd"], members, workdir) == ["gan"]
  assert sweep.prerequisites(by_name["gan"], members, workdir) == []
  pending = [by_name["gan_bpd"], by_name["vae"]]
  assert sweep.next_ready(pending, members, workdir).name == "vae"
  assert sweep.next_ready([by_name["gan_bpd"]], members, workdir) is None
  os.makedirs(tmp_path / "gan")
  (tmp_path / "gan" / "done.json").write_text("{}")
  assert sweep.next_ready(pending, members, workdir).name == "gan_bpd"


def test_each_family_says_which_configs_have_a_likelihood_and_names_their_mode():
  """The results tables' bits/dim only for models whose bound is on -log p of the 8-bit data, and their
  mode column, asked of each config's family (a table written out by hand, per papers/002 and 004)."""
  from adejax import families
  from configs import cifar_flow_gan, cifar_gan, cifar_hybrids, fmnist_glow, fmnist_glow_vae

  expected = {
      "default": (default.get_config(""), True, "av-ade"),
      "gan": (cifar_gan.get_config(""), False, "gan"),
      "vae bernoulli": (cifar_hybrids.get_config("vae"), False, "hybrid/vae"),
      "vae quantized normal": (cifar_hybrids.get_config("vae,quantized_normal"), True, "hybrid/vae"),
      "aae": (cifar_hybrids.get_config("aae"), False, "hybrid/aae"),
      "glow_vae": (fmnist_glow_vae.get_config(""), True, "glow_vae"),
      "glow": (fmnist_glow.get_config(""), True, "glow"),
      "flow-gan h": (cifar_flow_gan.get_config(""), True, "flow_gan/h"),
      "flow-gan a": (cifar_flow_gan.get_config("a"), True, "flow_gan/a"),  # an exact likelihood still
  }
  for name, (config, likelihood, mode) in expected.items():
    family = families.family_class(config)
    assert (family.has_likelihood(config), family.results_mode(config)) == (likelihood, mode), name


def test_jobs_members_share_each_accelerators_memory_and_run_on_one(monkeypatch, caplog):
  """--jobs=N on an accelerator host: each member's process gets 0.8/N of each device's memory (unless
  the user set the fraction) and runs there, where it used to be refused."""
  env = sweep.member_env([0], 4, environ={"PATH": "/bin"})
  assert env[sweep.JOB_CPUS_ENV] == "0" and env[sweep.JOBS_ENV] == "4" and env["PATH"] == "/bin"
  assert float(env[sweep.MEM_FRACTION_ENV]) == pytest.approx(0.2)
  assert sweep.member_env([0, 1], 2, environ={sweep.MEM_FRACTION_ENV: "0.3"})[sweep.MEM_FRACTION_ENV] == "0.3"
  cpus = sorted(os.sched_getaffinity(0))
  monkeypatch.setenv(sweep.JOB_CPUS_ENV, ",".join(map(str, cpus)))
  monkeypatch.setenv(sweep.JOBS_ENV, "4")
  monkeypatch.setenv(sweep.MEM_FRACTION_ENV, "0.2000")
  monkeypatch.setattr(sweep.jax, "default_backend", lambda: "gpu")
  with caplog.at_level("INFO"):
    sweep.pin_to_job_cpus()  # no ConfigError
  assert "--jobs=4: 0.2000 of each device's memory" in caplog.text


def test_a_sweep_restores_members_finished_in_its_committed_report_and_rewrites_it(tmp_path, monkeypatch):
  """--report=STEM: members whose rows STEM.csv holds at their budget are not run again when their
  workdir is gone (another machine), their rows come back unchanged, and the report is rewritten; a row
  at another budget does not count. (A member run again here would fail: its data folder is missing.)"""
  experiment_file = _experiment_file(tmp_path, "three.py", f"""
def get_experiment(scale):
  members = []
  for name in ("kept", "elsewhere", "old_budget"):
    c = default.get_config("tiny")
    c.mode, c.data.idx_dir = "vae", {str(tmp_path / "missing")!r}
    members.append(experiment.Member(name, c, {{"bpd": 4.0}}))
  return members
""")
  members = experiment.load_experiment(str(experiment_file), "tiny")
  steps = int(members[0].config.train.num_steps)
  first, second, stem = tmp_path / "first", tmp_path / "second", str(tmp_path / "report" / "three")
  for name, step in (("kept", steps), ("elsewhere", steps), ("old_budget", steps + 1)):
    reporting.write_json(str(first / name / "done.json"), {"bpd_elbo": 4.5, "fid_domain": 70.0, "step": step})
  committed = results.collect(members, str(first))
  results.write_report(committed, stem, "python -m adejax.sweep ...")
  reporting.write_json(str(second / "kept" / "done.json"), {"bpd_elbo": 4.25, "step": steps})
  assert results.restore_reported(members, str(second / "dry"), stem + ".csv") == ["kept", "elsewhere"]
  out = subprocess.run([sys.executable, "-m", "adejax.sweep", f"--experiment={experiment_file}",
                        f"--workdir={second}", "--scale=tiny", f"--report={stem}", "--only=kept,elsewhere"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "not run again: elsewhere" in out.stderr
  rows = {r["member"]: r for r in results.load_results(stem + ".csv")}
  assert rows["kept"]["bpd_elbo"] == 4.25  # its own workdir's result wins over the report's
  assert rows["elsewhere"]["bpd_elbo"] == 4.5 and rows["elsewhere"]["fid_domain"] == 70.0
  assert rows["elsewhere"]["paper_bpd"] == 4.0 and "step" not in rows["old_budget"]

  class Exited:  # a member's process that finished at once
    returncode = 0

    def __init__(self, *args, **kwargs):
      pass

    def poll(self):
      return 0

  monkeypatch.setattr(subprocess, "Popen", Exited)
  for name in ("kept", "elsewhere"):
    os.remove(second / name / "done.json")  # to be run again
  finished = []  # --jobs calls back as each member finishes (the sweep rewrites its report there)
  if len(os.sched_getaffinity(0)) >= 2:
    assert sweep.run_parallel(members[:2], str(experiment_file), str(second), "tiny", 2, finished.append) == []
    assert sorted(finished) == ["elsewhere", "kept"]


def test_a_curve_is_flat_from_the_step_after_which_no_doubling_paid_ten_percent():
  fid = {1000: 500.0, 2000: 300.0, 3000: 280.0, 4000: 250.0, 8000: 240.0}  # 40%, 17%, then 4% better
  assert results.flat_from(fid, higher_is_better=False) == 8000
  assert results.flat_from({1000: 100, 2000: 200, 3000: 205, 4000: 210}, higher_is_better=True) == 4000
  assert results.flat_from({1000: 100, 2000: 200, 4000: 300}, higher_is_better=True) is None  # +50%
  assert results.flat_from({1000: 100, 3000: 100}, higher_is_better=True) is None  # no doubling
  assert results.flat_from({2000: 300.0, 4000: 330.0}, higher_is_better=False) == 4000  # worse is flat
  paused = {1000: 667.0, 2000: 679.0, 3000: 671.0, 4000: 609.0, 8000: 400.0}  # flat at 2000, then not
  assert results.flat_from(paused, higher_is_better=False) is None
  assert results.flat_from({**paused, 16000: 390.0}, higher_is_better=False) == 16000
  assert results.last_doubling_gain(fid, higher_is_better=False) == pytest.approx(10 / 250)
  assert results.last_doubling_gain({1000: 100, 2000: 150}, higher_is_better=True) == pytest.approx(0.5)
  assert results.last_doubling_gain({1000: 100, 3000: 150}, higher_is_better=True) is None


def test_a_member_trained_in_stages_skips_the_stages_its_curve_holds(tmp_path, monkeypatch):
  """--curve_every: one train + evaluation per stage not yet in curve.csv, each stage's config the
  member's with only train.num_steps changed; rows in step order with cumulative training seconds (a
  stage stopped by SIGTERM and resumed counts both attempts), each stage's samples kept, and the last
  stage's metrics are the member's."""
  from adejax import evaluate

  c = default.get_config("tiny")
  c.train.num_steps = 4
  member, workdir = experiment.Member("m", c), str(tmp_path / "m")
  results.write_rows([{"step": 1, "train_seconds": 10.0, "fid_domain": 9.0},
                      {"step": 2, "train_seconds": 20.0, "fid_domain": 8.0}], os.path.join(workdir, "curve.csv"))
  trained, clock = [], [100.0]

  def fake_train(config, wd):
    changed = [] if config.train.num_steps == 4 else [f"train.num_steps: 4 -> {config.train.num_steps}"]
    assert wd == workdir and config_lib.differences(c, config) == changed
    trained.append(config.train.num_steps)
    clock[0] += 5.0
    if trained == [3]:  # the first attempt at stage 3 is stopped by SIGTERM after 5 s
      raise train.Interrupted("SIGTERM", 2, wd)
    return None

  def fake_evaluate(config, wd, t):
    clock[0] += 2.0
    out = os.path.join(wd, "eval")
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, f"samples_t{evaluate.TEMPERATURES[-1]:.1f}.png"), "w").write(str(config.train.num_steps))
    return {"step": config.train.num_steps, "fid_domain": 10.0 - config.train.num_steps}

  monkeypatch.setattr(train, "train", fake_train)
  monkeypatch.setattr(evaluate, "evaluate_run", fake_evaluate)
  monkeypatch.setattr(sweep, "time", type("FakeClock", (), {"time": staticmethod(lambda: clock[0])}))
  with pytest.raises(train.Interrupted):
    sweep.run_member(member, workdir, curve_every=1)
  metrics = sweep.run_member(member, workdir, curve_every=1)  # resumed: stage 3 again
  assert trained == [3, 3, 4] and metrics["step"] == 4 and metrics["fid_domain"] == 6.0
  rows = results.load_results(os.path.join(workdir, "curve.csv"))
  assert [r["step"] for r in rows] == [1, 2, 3, 4] and [r["fid_domain"] for r in rows] == [9, 8, 7, 6]
  assert [r["train_seconds"] for r in rows] == [10, 20, 30, 35]  # stage 3: both attempts' 5 s
  assert [r.get("eval_seconds") for r in rows] == [None, None, 2, 2]
  assert not os.path.exists(os.path.join(workdir, "curve_partial.json"))
  assert open(os.path.join(workdir, "eval", "samples_step3.png")).read() == "3"
  assert results.load_results(os.path.join(workdir, "curve.csv")) == rows  # and nothing is trained again
  assert sweep.run_member(member, workdir, curve_every=1)["step"] == 4 and trained == [3, 3, 4]


def test_a_curve_sweep_stopped_by_sigterm_resumes_in_a_fresh_workdir_from_its_committed_report(tmp_path):
  """The sweep of a learning curve is stopped (SIGTERM) while one member is mid-curve; relaunched with
  only the committed report (a fresh clone: its workdir gone), it restores the finished member from the
  report's rows and trains only the unfinished one, from the start, to the end of its curve."""
  import signal
  import time

  experiment_file = _experiment_file(tmp_path, "curves.py", """
def get_experiment(scale):
  members = []
  for name, steps in (("short", 2), ("long", 40)):
    c = default.get_config("tiny")
    c.mode, c.data.idx_dir, c.eval.num_fid_samples = "vae", {idx}, 0
    c.train.num_steps, c.train.log_every = steps, 1
    members.append(experiment.Member(name, c))
  return members
""")
  first, stem = tmp_path / "first", str(tmp_path / "docs" / "curves")
  command = lambda root: [sys.executable, "-m", "adejax.sweep", f"--experiment={experiment_file}",
                          f"--workdir={root}", "--scale=tiny", "--jobs=2", "--curve_every=20", f"--report={stem}"]
  parent = subprocess.Popen(command(first), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while not ((first / "short" / "done.json").exists() and (first / "long" / "curve.csv").exists()):
    assert time.time() < deadline and parent.poll() is None, parent.communicate()[1][-2000:]
    time.sleep(0.5)
  parent.send_signal(signal.SIGTERM)
  _, err = parent.communicate(timeout=120)
  assert parent.returncode == 0 and "stopped by SIGTERM" in err, err[-2000:]
  committed = results.load_results(stem + ".csv")  # the report as rewritten by the stopped sweep
  assert [(r["member"], r["step"]) for r in committed] == [("short", 2), ("long", 20)]
  assert not (first / "long" / "done.json").exists()

  fresh = tmp_path / "fresh"  # another machine: only the committed report
  out = subprocess.run(command(fresh), cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "not run again: short" in out.stderr and not (fresh / "short" / "curve.csv").exists()
  log = (fresh / "logs" / "long.log").read_text()
  # from the start (no checkpoint), then its second stage from its first stage's checkpoint
  assert log.index("curve at step 20") < log.index("Resumed from step 20 ") < log.index("curve at step 40")
  assert log.count("Resumed from step") == 1
  rows = results.load_results(stem + ".csv")
  assert [(r["member"], r["step"]) for r in rows] == [("short", 2), ("long", 20), ("long", 40)]
  assert rows[0] == committed[0]  # the restored member's row unchanged
  assert "| long | 40 |" in open(stem + ".md").read()
  # a sweep of the same members at their budgets takes both from the curve's rows at those steps
  table = str(tmp_path / "docs" / "table")
  out = subprocess.run([sys.executable, "-m", "adejax.sweep", f"--experiment={experiment_file}",
                        f"--workdir={tmp_path / 'table'}", "--scale=tiny", f"--report={table}",
                        f"--restore_from={stem}.csv"], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0 and "not run again: short, long" in out.stderr, out.stderr[-3000:]
  made = {r["member"]: r for r in results.load_results(table + ".csv")}
  assert made["long"]["bpd_elbo"] == rows[2]["bpd_elbo"] and made["short"]["step"] == 2
  assert made["long"]["generator_params"] > 0 and not (tmp_path / "table" / "long" / "checkpoints").exists()
  assert made["long"]["train_seconds"] == rows[2]["train_seconds"] > 0  # its cost: training to that stage
  assert "Compute: 2 timed members" in open(table + ".md").read()


def test_welchs_test_against_its_closed_form_and_in_the_report(tmp_path):
  """a = 1, 2, 3 against b = 4, 5, 6: t = -3 / sqrt(1/3 + 1/3), df = (2/3)^2 / (2 (1/3)^2 / 2) = 4, and p
  the two tails of Student's t with 4 degrees of freedom beyond |t| (its density integrated here)."""
  import numpy as np

  t, df, p = results.welch([1, 2, 3], [4, 5, 6])
  assert t == pytest.approx(-3 / np.sqrt(2 / 3)) and df == pytest.approx(4.0)
  x = np.linspace(abs(t), 400.0, 2_000_001)
  density = 3 / 8 * (1 + x ** 2 / 4) ** -2.5  # Student's t, 4 degrees of freedom
  assert p == pytest.approx(2 * np.sum((density[1:] + density[:-1]) / 2 * np.diff(x)), rel=1e-4)
  rows = [{"member": f"{g}_s{i}", "group": g, "modes": v, "step": 9} for g, vs in (("a", (1, 2, 3)), ("b", (4, 5, 6)))
          for i, v in enumerate(vs)] + [{"member": "c_s0", "group": "c", "modes": 7.0, "step": 9}]
  results.write_report(rows, str(tmp_path / "r"), "cmd", comparisons=[("a", "b"), ("a", "c")])
  text = (tmp_path / "r.md").read_text()
  assert f"| a vs b | modes | 2.000 ± 0.816 (3) | 5.000 ± 0.816 (3) | {t:.2f} | 4.0 | {p:.3g} |" in text
  assert "a vs c" not in text  # one run of c: nothing to test
  assert "Compute:" not in text  # no row timed
  rows[0].update(train_seconds=5400.0, eval_seconds=1800.0)
  rows[1].update(train_seconds=1800.0)
  results.write_report(rows, str(tmp_path / "r"), "cmd")
  assert ("Compute: 2 timed members, 2.00 hours training + 0.50 evaluating (train_seconds, eval_seconds: wall "
          "seconds on each member's own CPUs); not timed: a_s2, b_s0, b_s1, b_s2, c_s0.") in (tmp_path / "r.md").read_text()
  assert results.welch([1000, 1000], [1000, 1000, 1000])[::2] == (0.0, 1.0)  # no spread, no difference
  t, df, p = results.welch([1000, 1000], [6, 6])
  assert t == np.inf and np.isnan(df) and p == 0.0


def test_a_failing_curve_report_is_logged_and_never_stops_the_sweep(tmp_path, caplog):
  """The --jobs parent rewrites the curve report when a member's curve.csv changes; a report that fails
  (a full disk, a plot error) is a warning, not an exception that would stop the running members."""
  calls = []

  def report():
    calls.append(1)
    raise OSError("disk full")

  members = [experiment.Member("m", default.get_config("tiny"))]
  tick = sweep._when_changed(report, members, str(tmp_path))
  tick()  # no curve yet: nothing changed
  results.write_rows([{"step": 1}], str(tmp_path / "m" / "curve.csv"))
  with caplog.at_level("WARNING"):
    tick()
    tick()  # unchanged since: not written again
  assert len(calls) == 1 and "could not be written (OSError: disk full)" in caplog.text


def test_only_runs_the_named_members_in_its_order_and_refuses_unknown_names():
  members = [experiment.Member(n, None) for n in ("gan_s0", "vae_s0", "av-ade_s0")]
  assert [m.name for m in sweep.choose(members, ["av-ade_s0", "gan_s0", "av-ade_s0"])] == ["av-ade_s0", "gan_s0"]
  assert sweep.choose(members, []) == members
  with pytest.raises(config_lib.ConfigError, match=r"unknown members \['gan_s9'\]; members are"):
    sweep.choose(members, ["gan_s0", "gan_s9"])
