"""Whether two revisions give the same results: generate, train, simulate, unfold, validate.

A refactoring that moves code ("every result of the paper's final state stays
bit-identical") is checked by running the same chain with each revision's code on the
same machine and comparing what comes out, branch by branch and tensor by tensor:

1. ``generate -n 1500 --seed 9`` (Pythia and the card detector);
2. ``train`` one epoch of the demo's recipe on it (one thread: the same arithmetic);
3. ``simulate`` and ``unfold --samples 3`` of the generated file;
4. ``validate`` of both against the generated truth.

Every branch of the three ROOT files, every tensor of the model and its acceptance, and
``metrics.json`` are compared; keys that only the newer revision writes (metadata) are
listed, not counted as differences. Each revision runs from a ``git worktree`` of this
repository, imported instead of the installed package::

    python benchmarks/compare_revisions.py 5fe885d HEAD        # about 3 minutes per revision

Exit status 0 when the results are identical.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import awkward as ak
import torch
import uproot

REPOSITORY = Path(__file__).resolve().parents[1]
RECIPE = """\
preset: turbosim
model: {x_head: radiation, z_head: chain, encoder_noise_mode: cat, encoder_noise_sigma: 1.0}
loss:
  weights: {Dzt: 5, dxh: 0, dzt: 30, dzh: 3}
  score: {dzt: energy, dzh: energy}
  mass_weight: 100
train: {epochs: 1, lr: 3.0e-4, gp_interval: 4, ema_decay: 0.999, select_on_physics: true}
"""
#: Runs the command line of the checkout given first, not the installed package.
RUNNER = """\
import sys
root = sys.argv[1]
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, root)
import turbosim_hep
assert turbosim_hep.__file__.startswith(root), turbosim_hep.__file__
from turbosim_hep.cli import main
sys.exit(main(sys.argv[2:]))
"""
CHAIN = (
    ("generate", "-n", "1500", "--seed", "9", "-o", "gen.root"),
    ("train", "gen.root", "-o", "m.pt", "--threads", "1", "--config", "recipe.yaml"),
    ("simulate", "m.pt", "gen.root", "-o", "sim.root", "--jobs", "1"),
    ("unfold", "m.pt", "gen.root", "-o", "unf.root", "--samples", "3", "--jobs", "1"),
    ("validate", "--truth", "gen.root", "--sim", "sim.root", "--unfolded", "unf.root",
     "-o", "rep", "--plots", "none"),
)


def run_chain(revision: str, work: Path, label: str) -> Path:
    """The chain's outputs of ``revision``, in ``work/<label>``."""
    checkout, out = work / f"src-{label}", work / label
    subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", str(checkout),
                    revision], check=True, capture_output=True)
    out.mkdir()
    (out / "recipe.yaml").write_text(RECIPE)
    (work / "runner.py").write_text(RUNNER)
    try:
        for command in CHAIN:
            print(f"{revision}: {command[0]}", flush=True)
            subprocess.run(
                [sys.executable, str(work / "runner.py"), str(checkout), *command,
                 "--no-progress"],
                cwd=out, check=True, stdout=subprocess.DEVNULL,
            )
    finally:
        subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "remove", "--force",
                        str(checkout)], check=False, capture_output=True)
    return out


def compare(a: Path, b: Path) -> bool:
    """Print what differs between two chains' outputs; True when nothing does."""
    same = True
    for name in ("gen.root", "sim.root", "unf.root"):
        with uproot.open(a / name) as fa, uproot.open(b / name) as fb:
            ta, tb = fa["Events"], fb["Events"]
            keys = sorted(set(ta.keys()) | set(tb.keys()))
            differing = [
                k for k in keys if k not in ta or k not in tb
                or not ak.array_equal(ta[k].array(), tb[k].array(), equal_nan=True)
            ]
        print(f"{name}: {len(keys)} branches, {ta.num_entries} entries; differing: "
              f"{differing or 'none'}")
        same &= not differing
    pa, pb = (torch.load(p / "m.pt", weights_only=True) for p in (a, b))
    for key, sa, sb in (("model", pa["model_state"], pb["model_state"]),
                        ("acceptance", pa["acceptance"]["state"], pb["acceptance"]["state"])):
        differing = [k for k in sa if k not in sb or not torch.equal(sa[k], sb[k])]
        print(f"m.pt {key}: {len(sa)} tensors; differing: {differing or 'none'}")
        same &= not differing
    print(f"m.pt: keys only in {b.name}: {sorted(set(pb) - set(pa)) or 'none'}")
    ma, mb = (json.loads((p / "rep" / "metrics.json").read_text()) for p in (a, b))
    only = sorted(set(mb) - set(ma))
    equal = ma == {k: v for k, v in mb.items() if k in ma}
    print(f"metrics.json: {'identical' if equal else 'DIFFERENT'} (keys only in {b.name}: "
          f"{only or 'none'})")
    return same and equal


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the reference revision")
    parser.add_argument("new", help="the revision checked against it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="turbosim-revisions-") as work:
        a, b = (run_chain(r, Path(work), label) for r, label in ((args.old, "old"),
                                                                    (args.new, "new")))
        same = compare(a, b)
    print("identical" if same else "the revisions give different results")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
