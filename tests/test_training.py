"""The trainer on a tiny synthetic dataset with a random VGG: steps, resume, DDP, checkpoints, CLI."""
import csv
import json
import os
import pickletools
import socket
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from infusionnet.models import build_model, load_checkpoint, save_official_checkpoint
from infusionnet.models.train.config import TrainConfig, TrainingError, lr_factor
from infusionnet.models.train.data import collate_pairs
from infusionnet.models.train.losses import vgg_layers
from infusionnet.models.train.state import find_resume_checkpoint, read_training_state, resume_config
from infusionnet.models.train.trainer import Trainer, train

CROP = 32


def write_folder(folder: Path, count: int, seed: int):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        base = rng.random((3,)) * 255
        noise = rng.random((40, 44, 3)) * 120
        image = cv2.GaussianBlur(np.clip(base + noise, 0, 255).astype(np.uint8), (3, 3), 0)
        cv2.imwrite(str(folder / f"{index:02d}.png"), image)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_folder(root / "content", 6, seed=0)
    write_folder(root / "style" / "nested", 5, seed=1)
    (root / "content" / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, two OpenMP threads spin-wait for each
    other and a step costs several times more CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config_for(dataset: Path, output: Path, **changes) -> TrainConfig:
    values = dict(variant="aesfa", content_dir=str(dataset / "content"), style_dir=str(dataset / "style"),
                  vgg_seed=0, output=str(output), iterations=2, batch_size=2, crop=CROP, load_size=36, workers=0,
                  save_every=0, sample_every=0, log_every=1, eval_size=0, device="cpu", progress=False)
    values.update(changes)
    return TrainConfig(**values)


def weights(path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {f"{part}.{k}": v for part in ("netE", "netS", "netG") for k, v in state[part].items()}


@pytest.mark.slow
def test_loss_falls_when_overfitting_one_batch(dataset, tmp_path):
    trainer = Trainer(config_for(dataset, tmp_path, iterations=100))  # the official lr 1e-4
    sample = [trainer.dataset[i] for i in range(2)]
    batch = {"content": torch.stack([s["content"] for s in sample]),
             "style": torch.stack([s["style"] for s in sample]), "skipped": []}
    losses = [trainer.train_step([batch])["loss"].item() for _ in range(20)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.8 * losses[0], losses
    assert min(losses[-5:]) < 0.6 * losses[0], losses
    assert trainer.step == 20


@pytest.mark.slow
def test_run_writes_checkpoints_metrics_samples_and_counts_skipped_files(dataset, tmp_path):
    config = config_for(dataset, tmp_path / "run", iterations=4, save_every=2, sample_every=2, log_every=2,
                        eval_size=96, keep_checkpoints=1)
    summary = train(config)
    run = tmp_path / "run"
    assert summary["steps"] == 4 and not summary["interrupted"]
    assert summary["skipped_files"] == 1  # corrupt.jpg: skipped, counted, not fatal
    assert [p.name for p in sorted((run / "checkpoints").glob("*.pth"))] == ["step_00000004.pth"]  # kept 1
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_00000002.png", "step_00000004.png"]
    assert cv2.imread(str(run / "final" / "samples.png")).shape[0] > 96 * 5  # header + 5 content rows
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert rows[-1]["skipped_files"] == "1" and float(rows[-1]["lr"]) == pytest.approx(1e-4)

    checkpoint = run / "checkpoints" / "step_00000004.pth"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)  # no pickled code needed
    assert {"netE", "netS", "netG", "optim_E", "optim_S", "optim_G"} <= set(state)  # the authors' layout
    assert state["step"] == 4 and state["config"]["variant"] == "aesfa"
    model = load_checkpoint(checkpoint)  # what `infusionnet export` uses: extra keys are ignored
    assert model.variant == "aesfa"
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights(checkpoint)[key])
    final = load_checkpoint(run / "final" / "model.safetensors")
    assert all(torch.equal(v, final.state_dict()[k]) for k, v in model.state_dict().items())

    with pytest.raises(TrainingError, match="already holds checkpoints"):
        Trainer(config)


def test_resume_reproduces_the_next_steps_exactly(dataset, tmp_path):
    straight = train(config_for(dataset, tmp_path / "straight", iterations=4, lr_schedule="step", lr_step=3,
                                lr_gamma=0.5))
    train(config_for(dataset, tmp_path / "resumed", iterations=2, lr_schedule="step", lr_step=3, lr_gamma=0.5))
    checkpoint = find_resume_checkpoint(tmp_path / "resumed")
    assert checkpoint.name == "step_00000002.pth"
    config, notes = resume_config(checkpoint, {"iterations": 4, "output": str(tmp_path / "resumed")})
    assert notes == [] and config.lr_schedule == "step"
    summary = train(config, resume=str(checkpoint))
    assert summary["started_at"] == 2 and summary["steps"] == 4

    a, b = Path(straight["checkpoint"]), Path(summary["checkpoint"])
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = read_training_state(a), read_training_state(b)
    for key in ("optim_E", "optim_S", "optim_G"):
        for index, values in sa[key]["state"].items():
            assert all(torch.equal(values[name], sb[key]["state"][index][name]) for name in values)
    assert sa["optim_G"]["param_groups"][0]["lr"] == sb["optim_G"]["param_groups"][0]["lr"] == 0.5e-4
    # The resumed run's metrics continue the first part's rows.
    rows = list(csv.DictReader(open(tmp_path / "resumed" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]

    _, notes = resume_config(checkpoint, {"batch_size": 3})
    assert notes and "batch_size" in notes[0]


def test_a_run_from_init_weights_counts_their_steps_too(dataset, tmp_path):
    first = train(config_for(dataset, tmp_path / "first", iterations=2))
    second = train(config_for(dataset, tmp_path / "second", iterations=1, init=first["model"]))
    assert read_training_state(Path(second["checkpoint"]))["config"]["init_steps"] == 2
    final = json.loads(Path(second["model"]).with_suffix(".json").read_text())
    assert final["trained_steps"] == 3  # the first run's 2, then 1


def pickled_modules(checkpoint: Path) -> set:
    """The modules whose classes or functions a torch.save file's pickle names."""
    with zipfile.ZipFile(checkpoint) as archive:
        data = archive.read(next(name for name in archive.namelist() if name.endswith("data.pkl")))
    modules, strings = set(), []
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":  # protocol 2, torch.save's default: "module name"
            modules.add(argument.split(" ")[0])
        elif opcode.name == "STACK_GLOBAL":  # protocol 4+: the module and name were pushed before
            modules.add(strings[-2])
        elif isinstance(argument, str):
            strings.append(argument)
    return modules


def test_checkpoints_pickle_no_class_of_this_project(dataset, tmp_path):
    # --resume must keep reading checkpoints written before code moved (models/training.py became
    # models/train/ while runs were going): nothing in them may name a module of this project.
    summary = train(config_for(dataset, tmp_path / "run", iterations=1))
    modules = pickled_modules(Path(summary["checkpoint"]))
    assert modules and not [m for m in modules if m.split(".")[0] == "infusionnet"], modules


def test_resume_refuses_a_checkpoint_without_training_state(tmp_path):
    path = save_official_checkpoint(build_model("aesfa", seed=0), tmp_path / "main.pth")
    with pytest.raises(TrainingError, match="no resume state.*--init"):
        read_training_state(path)
    with pytest.raises(TrainingError, match="no checkpoint to resume"):
        find_resume_checkpoint(tmp_path / "nothing")


def test_settings_are_checked_before_work(dataset, tmp_path):
    def check(match, **changes):
        with pytest.raises(TrainingError, match=match):
            config_for(dataset, tmp_path, **changes).validate()
    check("batch size must be at least 2", batch_size=1)
    check("multiple of 32", variant="infusionnet", crop=80, load_size=96)
    check("needs VGG weights", vgg_seed=None)
    check("smaller than the crop", load_size=16)
    check("amp must be", amp="fp8")
    check("style-pixel-tap must be 0 or more", style_pixel_tap=-1.0)
    check("pass both", style_pixel_slices=8)
    check("content-tap must be one of 3, 4", content_tap=2)
    factor = lr_factor(config_for(dataset, tmp_path, iterations=100, lr_schedule="linear", lr_decay_start=60))
    assert [factor(s) for s in (0, 59, 60, 80, 100)] == [1.0, 1.0, 1.0, 0.5, 0.0]
    warm = lr_factor(config_for(dataset, tmp_path, iterations=100, lr_schedule="linear", lr_decay_start=60,
                                lr_warmup=10))
    assert [warm(s) for s in (0, 4, 9, 59, 80)] == [0.1, 0.5, 1.0, 1.0, 0.5]
    check("lr-warmup must be 0 or more", lr_warmup=-1)


def test_bf16_autocast_step_runs_on_cpu(dataset, tmp_path):
    trainer = Trainer(config_for(dataset, tmp_path, amp="bf16"))
    batch = collate_pairs([trainer.dataset[0], trainer.dataset[1]])
    losses = trainer.train_step([batch])
    assert np.isfinite(losses["loss"].item())


def test_channels_last_computes_the_same_step_and_saves_plain_weights(dataset, tmp_path):
    """NHWC memory changes the convolutions' kernels, not the maths: the same batch gives the same
    losses and gradients to float rounding (6e-6 apart here), and the final safetensors file loads
    as any other. Weights after a step are no measure: Adam's first step, with beta1 0, moves
    every weight by about +-lr whatever its gradient's size, rounding noise included."""
    settings = dict(variant="infusionnet", crop=96, load_size=96)  # the smallest InfusionNet takes
    plain = Trainer(config_for(dataset, tmp_path / "plain", **settings))
    nhwc = Trainer(config_for(dataset, tmp_path / "nhwc", channels_last=True, **settings))
    assert nhwc.model.netE.conv.weight.is_contiguous(memory_format=torch.channels_last)
    batch = collate_pairs([plain.dataset[0], plain.dataset[1]])
    losses_plain, losses_nhwc = plain.train_step([batch]), nhwc.train_step([batch])
    for name, value in losses_plain.items():
        torch.testing.assert_close(losses_nhwc[name], value, rtol=1e-4, atol=1e-6, msg=name)
    # As one vector: single gradients of biases before a normalization are rounding noise (~1e-7).
    gradients = [torch.cat([p.grad.flatten() for p in t.model.parameters() if p.grad is not None])
                 for t in (plain, nhwc)]
    assert float((gradients[1] - gradients[0]).norm() / gradients[0].norm()) < 1e-4
    nhwc.config.iterations = 2
    assert load_checkpoint(nhwc.train()["model"]).variant == "infusionnet"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, config: TrainConfig) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(config)


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_accumulating(dataset, tmp_path):
    """Two Gloo ranks with batch B each == one process accumulating two micro-batches of B:
    same samples (the step sampler), same negatives (picked per micro-batch), same averaged
    gradients; so the same weights to float rounding."""
    config = config_for(dataset, tmp_path / "ddp", iterations=2, log_every=1)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), config), nprocs=2, join=True)
    single = train(config_for(dataset, tmp_path / "single", iterations=2, accumulate=2))
    ddp_weights = weights(tmp_path / "ddp" / "checkpoints" / "step_00000002.pth")
    single_weights = weights(single["checkpoint"])
    moved = max((single_weights[k] - build_model("aesfa", seed=0).state_dict()[k]).abs().max().item()
                for k in single_weights)
    assert moved > 1e-5  # the weights did change
    for key, value in single_weights.items():
        torch.testing.assert_close(ddp_weights[key], value, rtol=1e-5, atol=1e-6)
    ddp_rows = list(csv.DictReader(open(tmp_path / "ddp" / "metrics.csv")))
    single_rows = list(csv.DictReader(open(tmp_path / "single" / "metrics.csv")))
    assert float(ddp_rows[0]["loss"]) == pytest.approx(float(single_rows[0]["loss"]), rel=1e-5)
    assert read_training_state(tmp_path / "ddp" / "checkpoints" / "step_00000002.pth")["config"]["world_size"] == 2


def test_cli_trains_and_resumes(dataset, tmp_path, capsys):
    from infusionnet.cli.main import main
    vgg = tmp_path / "vgg_normalised.pth"
    torch.manual_seed(0)
    torch.save(torch.nn.Sequential(*vgg_layers()).state_dict(), vgg)  # AdaIN layout, random weights
    common = ["train", "--content", str(dataset / "content"), "--style", str(dataset / "style"), "--vgg", str(vgg),
              "--variant", "aesfa", "--output", str(tmp_path / "run"), "--batch-size", "2", "--crop", "32",
              "--load-size", "36", "--workers", "0", "--eval-size", "0", "--device", "cpu"]
    assert main(common + ["--iterations", "1", "--content-tap", "4"]) == 0
    assert main(["train", "--resume", str(tmp_path / "run"), "--iterations", "2", "--eval-size", "0"]) == 0
    assert read_training_state(find_resume_checkpoint(tmp_path / "run"))["config"]["content_tap"] == 4
    out = capsys.readouterr()
    assert "resuming from" in out.err and "step_00000001.pth" in out.err
    assert read_training_state(find_resume_checkpoint(tmp_path / "run"))["step"] == 2
    with pytest.raises(SystemExit):  # 2 is not a count the paper compares (1, 3, 7)
        main(common + ["--iterations", "1", "--negatives", "2"])
    assert main(common[:-2] + ["--iterations", "1"]) == 2  # already holds checkpoints
    assert "already holds checkpoints" in capsys.readouterr().err
    # A schedule option the resumed run's (constant) schedule would ignore is refused before any step.
    assert main(["train", "--resume", str(tmp_path / "run"), "--iterations", "3", "--lr-decay-start", "2"]) == 2
    assert "--lr-decay-start applies to --lr-schedule linear only" in capsys.readouterr().err
    assert read_training_state(find_resume_checkpoint(tmp_path / "run"))["step"] == 2


def test_cli_refuses_schedule_options_its_schedule_would_ignore(dataset, tmp_path, capsys):
    """--lr-decay-start with the constant schedule was once silently ignored (a whole run at full lr)."""
    from infusionnet.cli.main import main
    common = ["train", "--content", str(dataset / "content"), "--style", str(dataset / "style"),
              "--vgg", str(tmp_path / "vgg_normalised.pth"), "--output", str(tmp_path / "run"), "--iterations", "4"]
    assert main(common + ["--lr-decay-start", "2"]) == 2
    assert "--lr-decay-start applies to --lr-schedule linear only" in capsys.readouterr().err
    assert main(common + ["--lr-schedule", "linear", "--lr-gamma", "0.5"]) == 2
    assert "--lr-gamma applies to --lr-schedule step only" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_help_shows_torchrun():
    from infusionnet.cli.main import build_parser
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()
    assert "torchrun --standalone --nproc_per_node" in help_text and "-m infusionnet.cli.main train" in help_text
    assert "--resume" in help_text


def test_cli_choices_match_the_losses():
    from infusionnet.cli import train as cli_train
    from infusionnet.models.train import losses
    assert cli_train.NEGATIVE_CHOICES == losses.NEGATIVE_CHOICES
    assert cli_train.CONTENT_TAP_CHOICES == losses.CONTENT_TAPS


def test_cli_help_defaults_match_the_config():
    from infusionnet.cli.train import HELP_DEFAULTS
    defaults = TrainConfig()
    assert {k: getattr(defaults, k) for k in HELP_DEFAULTS} == HELP_DEFAULTS
