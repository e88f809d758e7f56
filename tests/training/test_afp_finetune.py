"""AFP fine-tuning smoke test: a tiny extractor trained (stock nnU-Net) on the real TotalSegmentator example, a
stage-1 L1 checkpoint, then 2 fine-tune epochs with L1 + AFP; initialisation, fresh optimizer, loss, frozen
extractor, export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from synthct.cli.main import main

REPO = Path(__file__).resolve().parents[2]
TOTALSEG = REPO / "samples" / "totalsegmentator"
EXTRACTOR_ID = 931


@pytest.fixture(scope="module")
def synthesis_spacing(planned_dataset: str, nnunet_dirs: dict[str, Path]) -> list[float]:
    plans = json.loads((nnunet_dirs["preprocessed"] / planned_dataset / "synthctUNetPlans.json").read_text())
    return [float(s) for s in plans["configurations"]["3d_fullres"]["spacing"]]


@pytest.fixture(scope="module")
def extractor_dir(nnunet_dirs: dict[str, Path], synthesis_spacing: list[float],
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``synthct extractor labels`` on the real example CT + label map, then a tiny stock extractor training."""
    base = tmp_path_factory.mktemp("totalseg")
    (base / "ct").mkdir()
    (base / "seg").mkdir()
    shutil.copy(TOTALSEG / "example_ct_sm.nii.gz", base / "ct" / "s0001.nii.gz")
    shutil.copy(TOTALSEG / "example_seg.nii.gz", base / "seg" / "s0001.nii.gz")
    raw = nnunet_dirs["raw"] / f"Dataset{EXTRACTOR_ID}_CompactAnatomy"
    assert main(["extractor", "labels", str(base / "ct"), str(raw), "--labels", str(base / "seg")]) == 0
    from synthct.training.extractor_training import train_extractor

    torch.manual_seed(0)
    out = train_extractor(raw, synthesis_spacing, fold="all", epochs=1, iterations=2, val_iterations=1,
                          patch_size=(16, 32, 32), base_features=4, max_features=16, batch_size=2, device="cpu",
                          num_processes=1)
    assert (out / "fold_all" / "checkpoint_final.pth").is_file()
    return out


@pytest.fixture(scope="module")
def stage1_checkpoint(planned_dataset: str, nnunet_dirs: dict[str, Path]) -> Path:
    from synthct.training.config import TrainConfig
    from synthct.training.run import train

    torch.manual_seed(0)
    out = train(planned_dataset, 1, "synthctUNetPlans",
                TrainConfig(epochs=1, iterations_per_epoch=2, val_iterations_per_epoch=1), device="cpu",
                validate=False)
    return out / "checkpoint_final.pth"


def test_extractor_train_writes_a_loadable_stock_results_folder(extractor_dir: Path,
                                                                synthesis_spacing: list[float]) -> None:
    from synthct.losses import load_feature_extractor

    plans = json.loads((extractor_dir / "plans.json").read_text())
    assert list(plans["configurations"]) == ["3d_fullres"]
    assert plans["configurations"]["3d_fullres"]["patch_size"] == [16, 32, 32]
    extractor = load_feature_extractor(extractor_dir, "all")
    assert extractor.spacing == pytest.approx(tuple(synthesis_spacing))
    assert len(json.loads((extractor_dir / "dataset.json").read_text())["labels"]) == 7


def test_afp_finetune_smoke(planned_dataset: str, nnunet_env: dict[str, Path], extractor_dir: Path,
                            stage1_checkpoint: Path, tmp_path: Path) -> None:
    from synthct.network.checkpoint import load_model_folder, read_nnunet_checkpoint
    from synthct.network.export import export_model
    from synthct.preprocessing.plans import load_plans
    from synthct.training.afp_trainer import SynthCTTrainerAFP, afp_config
    from synthct.training.run import build_trainer

    config = afp_config(epochs=2, iterations_per_epoch=2, val_iterations_per_epoch=1,
                        afp_extractor=str(extractor_dir), afp_fold="all", init_checkpoint=str(stage1_checkpoint))
    assert config.initial_lr == 1e-3 and config.afp is not None and config.afp.l1_weight == 5.0
    base = nnunet_env["preprocessed"] / planned_dataset
    trainer = build_trainer(load_plans(base, "synthctUNetPlans"), json.loads((base / "dataset.json").read_text()),
                            1, config, trainer="afp", device=torch.device("cpu"))
    assert isinstance(trainer, SynthCTTrainerAFP)
    trainer.initialize()

    # initialised from stage 1, output layer included
    stage1 = read_nnunet_checkpoint(stage1_checkpoint)["network_weights"]
    state = trainer.unwrapped_network().state_dict()
    seg_keys = [k for k in stage1 if "seg_layers" in k]
    assert seg_keys
    assert all(torch.equal(state[k], stage1[k]) for k in stage1)
    # fresh optimizer: no momentum buffers, lr = 1e-3
    assert not trainer.optimizer.state and trainer.optimizer.param_groups[0]["lr"] == 1e-3
    extractor_before = {k: v.clone() for k, v in trainer.afp.extractor.state_dict().items()}

    # the loss includes AFP: total > λ·L1 alone
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    batch = next(trainer.dataloader_train)
    data, z, _, seg = trainer._to_device(batch)
    with torch.no_grad():
        total, l1, afp = trainer.compute_loss(trainer.network(data), z, seg)
    assert afp.item() > 0 and total.item() > 5.0 * l1.item()
    assert total.item() == pytest.approx(5.0 * l1.item() + afp.item(), rel=1e-5)

    trainer.run_training()
    assert not trainer.afp.extractor.training and not trainer.afp.extractor.network.training
    assert not any(p.requires_grad for p in trainer.afp.extractor.parameters())
    assert all(torch.equal(v, extractor_before[k]) for k, v in trainer.afp.extractor.state_dict().items())
    final = read_nnunet_checkpoint(Path(trainer.output_folder) / "checkpoint_final.pth")
    assert final["current_epoch"] == 2
    assert final["logging"]["lrs"][0] == pytest.approx(1e-3)
    assert np.isfinite(final["logging"]["train_losses"]).all()
    assert not any(k.startswith("afp") or "extractor" in k for k in final["network_weights"])
    logs = "".join(p.read_text() for p in Path(trainer.output_folder).glob("training_log_*.txt"))
    assert str(stage1_checkpoint.resolve()) in logs

    model = export_model(Path(trainer.output_folder).parent, tmp_path / "model", checkpoint="final")
    manifest, networks = load_model_folder(model)
    assert len(networks) == 1 and manifest.patch_size == (16, 32, 32)
    assert "L1 + AFP fine-tune (stage 2)" in manifest.description and "L1 stage" not in manifest.description
    train_config = json.loads((Path(trainer.output_folder) / "train_config.json").read_text())
    assert train_config["afp_fold"] == "all" and train_config["init_checkpoint"] == str(stage1_checkpoint)
    exported = networks[0].state_dict()
    assert all(torch.equal(exported[k].float(), v.float()) for k, v in final["network_weights"].items()
               if k in exported)


def test_finetune_cli_rejects_missing_inputs(nnunet_env: dict[str, Path], tmp_path: Path, capsys) -> None:
    from synthct.cli.main import build_parser

    args = build_parser().parse_args(["finetune", "513", "0", "--init", str(tmp_path / "none.pth"),
                                      "--extractor", str(tmp_path), "--device", "cpu"])
    assert args.l1_weight is None and args.masked is None and args.init.endswith("none.pth")
    assert main(["finetune", "513", "0", "--init", str(tmp_path / "none.pth"), "--extractor", str(tmp_path),
                 "--device", "cpu"]) == 1
    (tmp_path / "init.pth").write_bytes(b"")
    (tmp_path / "fold_0").mkdir()  # what a failed extractor run used to leave: a fold folder without a checkpoint
    assert main(["finetune", "513", "0", "--init", str(tmp_path / "init.pth"), "--extractor", str(tmp_path),
                 "--device", "cpu"]) == 1
    assert "no extractor checkpoint fold_0/checkpoint_final.pth or fold_all/checkpoint_final.pth" in \
        capsys.readouterr().err
    extractor_args = build_parser().parse_args(["extractor", "train", "931", "--spacing", "2.5", "1", "1",
                                                "--fold", "all", "--epochs", "1"])
    assert extractor_args.spacing == [2.5, 1.0, 1.0] and extractor_args.func.__name__ == "_train"


def test_l1_control_skips_the_extractor_and_a_seed_repeats_the_batches(planned_dataset: str,
                                                                       nnunet_env: dict[str, Path],
                                                                       extractor_dir: Path,
                                                                       stage1_checkpoint: Path) -> None:
    """The experiment's arms: 5·L1 + 0·AFP never runs the extractor; --seed gives every arm the same patches;
    afp_extractor_init="random" reaches the loaded extractor."""
    from synthct.preprocessing.plans import load_plans
    from synthct.training.afp_trainer import afp_config
    from synthct.training.run import build_trainer

    base = nnunet_env["preprocessed"] / planned_dataset
    batches = []
    for init, weight in (("trained", 0.0), ("random", 1.0)):
        config = afp_config(epochs=1, iterations_per_epoch=1, val_iterations_per_epoch=1, seed=7, afp_weight=weight,
                            afp_extractor=str(extractor_dir), afp_fold="all", afp_extractor_init=init,
                            init_checkpoint=str(stage1_checkpoint))
        trainer = build_trainer(load_plans(base, "synthctUNetPlans"), json.loads((base / "dataset.json").read_text()),
                                0, config, trainer="afp", device=torch.device("cpu"))
        trainer.initialize()
        trainer.on_train_start()
        batch = next(trainer.dataloader_train)
        batches.append(batch)
        data, z, _, seg = trainer._to_device(batch)
        if weight == 0:
            trainer.afp.extractor.forward = None  # the control must not call it
            with torch.no_grad():
                total, l1, afp = trainer.compute_loss(trainer.network(data), z, seg)
            assert afp.item() == 0 and total.item() == pytest.approx(5.0 * l1.item(), rel=1e-6)
        else:
            assert "random weights" in "".join(p.read_text() for p in
                                               Path(trainer.output_folder).glob("training_log_*.txt"))
    assert np.array_equal(np.asarray(batches[0]["data"]), np.asarray(batches[1]["data"]))


def test_l1_trainer_starts_from_exported_weights(planned_dataset: str, nnunet_env: dict[str, Path],
                                                 stage1_checkpoint: Path, tmp_path: Path) -> None:
    """``synthct train --init`` (TrainConfig.init_checkpoint) on the L1 trainer: an exported fp16 model's weights
    initialise the network strictly; weights of another architecture are refused with the plans named."""
    from synthct.network.checkpoint import load_state_dict
    from synthct.network.export import export_model
    from synthct.preprocessing.plans import load_plans
    from synthct.training.config import TrainConfig
    from synthct.training.run import build_trainer

    model = export_model(stage1_checkpoint.parents[1], tmp_path / "model", checkpoint="final", half=True)
    (weights,) = model.glob("fold_*/model.safetensors")
    base = nnunet_env["preprocessed"] / planned_dataset
    dataset_json = json.loads((base / "dataset.json").read_text())
    config = TrainConfig(epochs=1, iterations_per_epoch=1, val_iterations_per_epoch=1, init_checkpoint=str(weights),
                         augmentation="mild")
    trainer = build_trainer(load_plans(base, "synthctUNetPlans"), dataset_json, 1, config, device=torch.device("cpu"))
    trainer.initialize()
    state = trainer.unwrapped_network().state_dict()
    exported = load_state_dict(weights)
    assert exported and all(torch.equal(state[k], v.float()) for k, v in exported.items())
    other = build_trainer(load_plans(base, "synthctResUNetPlans"), dataset_json, 1, config, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="does not match the network of plans 'synthctResUNetPlans'"):
        other.initialize()
