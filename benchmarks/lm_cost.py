"""What BADS costs on a tiny GPT-2: step time next to plain fine-tuning, peak memory next to L2RW.

    OMP_NUM_THREADS=1 python benchmarks/lm_cost.py [--steps 120] [--subsets all,last-block,lora]
                                                   [--out benchmarks/results/lm_cost.json]

**Model and data** (defaults; every size is an option): a randomly initialised GPT-2 built from a
``GPT2Config`` (nothing downloaded): vocabulary 1,000, 4 blocks, width 128, 4 heads, 64 positions,
no dropout, **eager attention** for every method (the default SDPA kernel on CPU has no second
derivative, so L2RW's lookahead cannot run through it). Synthetic right-padded token sequences of
32-64 tokens (8-token prompt, only response tokens scored, :func:`causal_lm_targets`); N = 2,000
train and M = 64 meta sequences; train batch 16, meta batch 4. θ is one of three subsets
(:mod:`pyrodps.models.subset`): ``all`` parameters, the ``last-block`` (its block and the final
layer norm; the rest frozen) or a ``lora`` adapter (``peft``, rank 8 on ``c_attn``; needs ``peft``).

**Methods** (each on its own copy of the network):

* ``bads``: the default BADS kernel of :class:`pyrodps.BADSConfig` (pSGLD, slice-sampled table
  weights, calibrated prior) on the :class:`TokenSequence` likelihood (summed token NLL), as the
  driver runs it: gather the train batch (16) **and the meta batch (4)**, one joint forward/backward
  of the 20 sequences, prior gradient, pSGLD update with fresh noise, weight update, online weight
  statistics (scalar diagnostics every 10th step);
* ``plain``: plain fine-tuning: gather the train batch, forward, the mean token NLL, backward, one
  Adam step of the sampled parameters (16 sequences);
* ``plain-same``: the same plain step on the train **and** meta batch (20 sequences: the number of
  sequences a BADS step runs through the network);
* ``l2rw``: Learning-to-Reweight's step (:mod:`pyrodps.baselines.l2rw`, composed here from its
  functions over the sampled parameters only; with ``all`` it is exactly ``l2rw_step``): the
  per-example meta gradient through the differentiable lookahead (reverse-over-reverse
  ``torch.func.grad``), the normalised weights, a momentum-SGD step on the weighted train loss.

**Time**: median wall time per step, ``OMP_NUM_THREADS=1``, all methods built in one process and run
in interleaved rounds (``step_cost.interleaved_medians``), so drift of the machine hits all alike
(within a subset: the subsets run one after the other, so compare times across subsets with care).

**Peak memory**: every (subset, method) runs in a **fresh process** (``--worker``): build the data,
network, optimizer / sampler state and batch stream; run one step on a 2-sequence batch (lazy
imports and one-off allocations, the optimizer's and sampler's state, land in the footprint). Then:

* ``peak_rss_growth_mib``: the kernel's view: read the RSS (``/proc/self/statm``), reset the high-water
  mark (``/proc/self/clear_refs``), run 4 steps, ``VmHWM`` (``/proc/self/status``) minus that RSS. It
  includes the C allocator's slack (and its reuse of freed heap) and is noisier. (Not ``ru_maxrss``: a
  process started by ``fork`` + ``exec`` from a large parent inherits the parent's peak there, which
  ``clear_refs`` cannot reset.)
* ``torch_peak_mib`` (**the figure the memory ratios use**): one more step under ``torch.profiler``
  with ``profile_memory=True``; the largest running total of torch's CPU allocations during the step
  above its start: the step's working memory (activations, the autograd graph, L2RW's lookahead
  graph, gradients, the update's temporaries), exact for tensors and deterministic;
* ``state_mib``: the tensors the method keeps between steps besides the network (Adam's two moments,
  SGD's momentum; BADS: pSGLD's second moment, the weight table and its online statistics);
  ``memory_with_state_*`` ratios compare ``torch_peak_mib + state_mib``, ``rss_memory_*`` the RSS growth.

``--in-process`` runs the workers in this process (tests only: not isolated).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from blo_workloads import current_rss_mib
from step_cost import interleaved_medians

from pyrodps.app.runner import machine_description
from pyrodps.bads import BADSConfig
from pyrodps.bads.build import assemble
from pyrodps.bads.config import PRESETS
from pyrodps.baselines.l2rw import l2rw_step
from pyrodps.baselines.sgd import sgd_step
from pyrodps.io import write_json
from pyrodps.models import MinibatchStream, SelectionData
from pyrodps.models.causal_lm import CausalLMLogits
from pyrodps.models.data import Batch
from pyrodps.models.sequence import IGNORE_INDEX, TokenSequence, causal_lm_targets
from pyrodps.models.subset import last_blocks, parameter_counts, sample_only
from pyrodps.run import OnlineWeightStats

SCRIPT = Path(__file__).resolve()
METHODS = ("bads", "plain", "plain-same", "l2rw")
SUBSETS = ("all", "last-block", "lora")
TIME_TARGET, MEMORY_TARGET = 1.2, 0.6  # issue #14: BADS <= 1.2x a plain step, <= 0.6x L2RW's peak memory


@dataclass(frozen=True)
class Sizes:
    vocab: int = 1000
    layers: int = 4
    width: int = 128
    heads: int = 4
    length: int = 64
    batch: int = 16
    meta_batch: int = 4
    num_train: int = 2000
    num_meta: int = 64
    lora_rank: int = 8


def make_net(s: Sizes, subset: str, seed: int = 0) -> CausalLMLogits:
    """The GPT-2 of ``s`` (eager attention, no dropout) with θ = ``subset`` of its parameters."""
    import transformers

    config = transformers.GPT2Config(vocab_size=s.vocab, n_positions=s.length, n_embd=s.width, n_layer=s.layers,
                                     n_head=s.heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=0, eos_token_id=0, pad_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: nn.Module = transformers.GPT2LMHeadModel._from_config(config, attn_implementation="eager").eval()
        if subset == "lora":
            import peft

            lora = peft.LoraConfig(r=s.lora_rank, lora_alpha=2 * s.lora_rank, target_modules=["c_attn"],
                                   lora_dropout=0.0, fan_in_fan_out=True)
            model = peft.get_peft_model(model, lora)  # freezes the base model
    net = CausalLMLogits(model, pad_token_id=None)  # right-padded: causal attention never sees the padding
    if subset == "last-block":
        sample_only(net, last_blocks(net) + ["*.ln_f.*"])
    elif subset not in ("all", "lora"):
        raise ValueError(f"unknown subset {subset!r}; choose from {', '.join(SUBSETS)}")
    return net


def token_data(s: Sizes, seed: int = 0) -> SelectionData:
    """Right-padded random token sequences of ``length/2 .. length`` tokens, 8-token prompts (not scored)."""
    g = torch.Generator().manual_seed(seed)

    def part(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.randint(1, s.vocab, (n, s.length), generator=g)
        lengths = torch.randint(s.length // 2, s.length + 1, (n,), generator=g)
        mask = torch.arange(s.length)[None, :] < lengths[:, None]
        ids[~mask] = 0
        prompt = torch.full((n,), min(8, s.length // 2 - 1))
        return ids, causal_lm_targets(ids, mask.long(), prompt_lengths=prompt)

    return SelectionData(*part(s.num_train), *part(s.num_meta))


class Stepper:
    """One method's step on its own network; ``step(batch)`` (``None``: the next batch of its stream)."""

    def __init__(self, s: Sizes, subset: str, data: SelectionData, seed: int = 0) -> None:
        self.sizes, self.data = s, data
        self.net = make_net(s, subset, seed)
        self.likelihood = TokenSequence(s.vocab)
        self.stream = MinibatchStream(data, s.batch, s.meta_batch, torch.Generator().manual_seed(seed + 1))

    def sampled(self) -> list[nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def state_tensors(self) -> list[torch.Tensor]:
        """The tensors the method keeps between steps besides the network's parameters."""
        return [t for st in self.opt.state.values() for t in st.values() if isinstance(t, torch.Tensor)]

    def step(self, batch: Batch | None = None) -> None:
        self._step(self.stream.next() if batch is None else batch)

    def _step(self, b: Batch) -> None:
        raise NotImplementedError


class BADSStepper(Stepper):
    def __init__(self, s: Sizes, subset: str, data: SelectionData, seed: int = 0) -> None:
        super().__init__(s, subset, data, seed)
        family = "tokens" if "tokens" in PRESETS["current"] else "sequence"  # the tuned values of token inputs
        cfg = BADSConfig(batch_size=s.batch, meta_batch_size=s.meta_batch, step_size=1e-4, rho_theta=1.0)
        cfg = cfg.resolved_for(family, data.num_train, data.num_meta)
        _, self.kernel = assemble(self.net, self.likelihood, data, cfg)
        self.state = self.kernel.init(seed)
        self.stats = OnlineWeightStats(data.num_train)
        self.t = 0

    def state_tensors(self) -> list[torch.Tensor]:
        """Everything of the chain's state but θ (the parameters' storage), and the weight statistics."""
        keep = [v for k, v in vars(self.state).items() if k != "theta" and isinstance(v, torch.Tensor)]
        return keep + [v for v in vars(self.stats).values() if isinstance(v, torch.Tensor)]

    def _step(self, b: Batch) -> None:
        self.state, info = self.kernel.step(self.state, b, self.t % 10 == 0)  # thin=10 diagnostics, as the driver
        self.stats.update(info["idx"], info["w"])
        self.t += 1


class PlainStepper(Stepper):
    """Adam on the mean token NLL of the train batch (``with_meta``: of the train and meta batch)."""

    def __init__(self, s: Sizes, subset: str, data: SelectionData, seed: int = 0, with_meta: bool = False) -> None:
        super().__init__(s, subset, data, seed)
        self.with_meta = with_meta
        self.opt = torch.optim.Adam(self.sampled(), lr=1e-4)

    def _step(self, b: Batch) -> None:
        x, y = (torch.cat((b.x_train, b.x_meta)), torch.cat((b.y_train, b.y_meta))) if self.with_meta else (b.x_train, b.y_train)
        logits = self.net(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)
        sgd_step(self.net, self.opt, loss)


class L2RWStepper(Stepper):
    """:func:`~pyrodps.baselines.l2rw.l2rw_step` (its meta-gradient over the trained parameters), momentum SGD."""

    def __init__(self, s: Sizes, subset: str, data: SelectionData, seed: int = 0) -> None:
        super().__init__(s, subset, data, seed)
        self.opt = torch.optim.SGD(self.sampled(), lr=1e-3, momentum=0.9)

    def _step(self, b: Batch) -> None:
        l2rw_step(self.net, self.opt, b.x_train, b.y_train, b.x_meta, b.y_meta, likelihood=self.likelihood)


def make_stepper(method: str, s: Sizes, subset: str, data: SelectionData, seed: int = 0) -> Stepper:
    if method == "bads":
        return BADSStepper(s, subset, data, seed)
    if method in ("plain", "plain-same"):
        return PlainStepper(s, subset, data, seed, with_meta=method == "plain-same")
    if method == "l2rw":
        return L2RWStepper(s, subset, data, seed)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def time_subset(s: Sizes, subset: str, steps: int, rounds: int, warmup: int) -> dict[str, float]:
    """Median milliseconds per step of every method on ``subset``, interleaved in rounds."""
    data = token_data(s)
    steppers = {m: make_stepper(m, s, subset, data) for m in METHODS}
    return {m: v * 1e3 for m, v in interleaved_medians(steppers, steps, rounds=rounds, warmup=warmup).items()}


def torch_peak_mib(step) -> float:
    """The largest running total of torch's CPU allocations during ``step()`` above its start, MiB."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
    return max([0, *totals]) / 2**20


def vm_hwm_mib() -> float | None:
    """The process's RSS high-water mark ``VmHWM`` (``/proc/self/status``), or ``None`` without procfs."""
    try:
        line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 1024


def reset_hwm() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux: write 5 to ``/proc/self/clear_refs``); ``False`` if it did not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    hwm, rss = vm_hwm_mib(), current_rss_mib()
    return hwm is not None and rss is not None and hwm <= rss + 1.0


def run_worker(s: Sizes, subset: str, method: str, steps: int = 4) -> dict:
    """Peak memory of ``method`` on ``subset`` (module docstring); run it in a fresh process."""
    data = token_data(s)
    stepper = make_stepper(method, s, subset, data)
    stepper.step(Batch.gather(data, torch.arange(2), torch.arange(min(2, data.num_meta))))
    rss_before = current_rss_mib()
    was_reset = reset_hwm()
    for _ in range(steps):
        stepper.step()
    peak = vm_hwm_mib()
    torch_peak = torch_peak_mib(stepper.step)  # after the RSS steps: the heap it grows stays resident
    finite = all(bool(torch.isfinite(p).all()) for p in stepper.net.parameters())
    sampled, frozen = parameter_counts(stepper.net)
    state = sum(t.numel() * t.element_size() for t in stepper.state_tensors()) / 2**20
    return {"subset": subset, "method": method, "torch_peak_mib": torch_peak, "state_mib": state,
            "rss_before_mib": rss_before, "peak_rss_mib": peak, "peak_was_reset": was_reset,
            "peak_rss_growth_mib": None if rss_before is None or peak is None or not was_reset else peak - rss_before,
            "sampled_params": sampled, "frozen_params": frozen, "finite": finite}


def spawn_worker(s: Sizes, subset: str, method: str, in_process: bool) -> dict:
    if in_process:
        return {**run_worker(s, subset, method), "isolated_process": False}
    cmd = [sys.executable, str(SCRIPT), "--worker", f"{subset}:{method}", "--sizes", json.dumps(asdict(s))]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {subset}/{method} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return {**json.loads(lines[-1]), "isolated_process": True}


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def summarise(timing: dict[str, dict[str, float]], memory: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Per subset: ``bads/plain``, ``bads/plain-same``, ``l2rw/bads`` (time) and ``bads/l2rw`` (memory)."""
    out = {}
    for subset, t in timing.items():
        m = memory.get(subset, {})
        peak = {k: v["torch_peak_mib"] for k, v in m.items()}
        with_state = {k: v["torch_peak_mib"] + v["state_mib"] for k, v in m.items()}
        rss = {k: v["peak_rss_growth_mib"] for k, v in m.items()}
        out[subset] = {"time_bads_over_plain": ratio(t["bads"], t["plain"]),
                       "time_bads_over_plain_same": ratio(t["bads"], t["plain-same"]),
                       "time_l2rw_over_bads": ratio(t["l2rw"], t["bads"]),
                       "memory_bads_over_l2rw": ratio(peak.get("bads"), peak.get("l2rw")),
                       "memory_bads_over_plain_same": ratio(peak.get("bads"), peak.get("plain-same")),
                       "memory_with_state_bads_over_l2rw": ratio(with_state.get("bads"), with_state.get("l2rw")),
                       "rss_memory_bads_over_l2rw": ratio(rss.get("bads"), rss.get("l2rw"))}
    return out


def table(result: dict) -> str:
    def fmt(v: float | None, spec: str = ".1f") -> str:
        return "" if v is None else format(v, spec)

    header = f"{'subset':<11}{'θ size':>9}{'method':>12}{'ms/step':>10}{'step peak MiB':>15}{'state MiB':>11}"
    lines = [f"tiny GPT-2 {result['sizes']}", header + f"{'RSS growth MiB':>16}"]
    for subset, t in result["timing_ms"].items():
        for method in METHODS:
            m = result["memory"].get(subset, {}).get(method, {})
            lines.append(f"{subset:<11}{result['parameters'][subset]['sampled']:>9}{method:>12}{t[method]:>10.2f}"
                         f"{fmt(m.get('torch_peak_mib')):>15}{fmt(m.get('state_mib')):>11}"
                         f"{fmt(m.get('peak_rss_growth_mib')):>16}")
    keys = ("time_bads_over_plain", "time_bads_over_plain_same", "time_l2rw_over_bads", "memory_bads_over_l2rw",
            "memory_with_state_bads_over_l2rw", "rss_memory_bads_over_l2rw")
    lines.append(f"{'subset':<11}{'bads/plain':>11}{'bads/plain-same':>16}{'l2rw/bads':>10}{'mem bads/l2rw':>14}"
                 f"{'+state':>8}{'RSS':>7}   targets: time <= {TIME_TARGET}, memory <= {MEMORY_TARGET}")
    for subset, r in result["ratios"].items():
        f = [fmt(r[k], ".3f") for k in keys]
        lines.append(f"{subset:<11}{f[0]:>11}{f[1]:>16}{f[2]:>10}{f[3]:>14}{f[4]:>8}{f[5]:>7}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for f in fields(Sizes):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=f.default)
    ap.add_argument("--subsets", default="all,last-block,lora", help=f"comma-separated, of {', '.join(SUBSETS)}")
    ap.add_argument("--steps", type=int, default=120, help="timed steps per method and subset")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--in-process", action="store_true", help="memory workers in this process (tests only)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/lm_cost.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # subset:method, in a fresh process
    ap.add_argument("--sizes", help=argparse.SUPPRESS)  # the worker's Sizes as JSON
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.worker:
        subset, method = args.worker.split(":")
        print(json.dumps(run_worker(Sizes(**json.loads(args.sizes)), subset, method)))
        return None
    s = Sizes(**{f.name: getattr(args, f.name) for f in fields(Sizes)})
    subsets = [x for x in args.subsets.split(",") if x]
    if "lora" in subsets:
        try:
            import peft  # noqa: F401
        except ImportError:
            print("peft is not installed: skipping the lora subset (pip install 'pyrodps[lora]')")
            subsets.remove("lora")
    timing, memory, parameters = {}, {}, {}
    t0 = time.perf_counter()
    for subset in subsets:
        timing[subset] = time_subset(s, subset, args.steps, args.rounds, args.warmup)
        memory[subset] = {m: spawn_worker(s, subset, m, args.in_process) for m in METHODS}
        sampled, frozen = parameter_counts(make_net(s, subset))
        parameters[subset] = {"sampled": sampled, "frozen": frozen}
    result = {"benchmark": "lm_cost", "sizes": asdict(s), "steps": args.steps, "rounds": args.rounds,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads(),
              "parameters": parameters, "timing_ms": timing, "memory": memory,
              "ratios": summarise(timing, memory), "targets": {"time_bads_over_plain": TIME_TARGET,
                                                               "memory_bads_over_l2rw": MEMORY_TARGET},
              "wall_s": time.perf_counter() - t0, "machine": machine_description()}
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
