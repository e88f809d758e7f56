"""The folder to point nnU-Net's ``nnUNet_extTrainer`` at, so that stock ``nnUNetv2_train`` finds synthct's trainers.

    export nnUNet_extTrainer="$(python -c 'import synthct.training.nnunet_ext as m; print(m.PATH)')"
    nnUNetv2_train DATASET 3d_fullres FOLD -tr SynthCTTrainerL1 -p synthctResUNetPlans

How nnunetv2 2.8.1 resolves ``-tr NAME`` (``nnunetv2/utilities/find_objects.py``): it first searches its own
``nnunetv2.training.nnUNetTrainer`` package; if the class is not there and ``nnUNet_extTrainer`` is set, it splits
the variable on ``os.pathsep`` and, for each existing folder, puts the folder on ``sys.path``, imports every
top-level module in it (then recurses into sub-packages) and returns the first module attribute named ``NAME``;
modules imported from the folder are dropped from ``sys.modules`` afterwards. This folder therefore holds a single
module with a name no other package uses, :mod:`synthct_trainers`, which only re-exports the real classes from
``synthct.training``: the class nnU-Net gets *is* ``synthct.training.trainer.SynthCTTrainerL1``.

Hyper-parameters: the trainer reads ``synthct.train_config`` from the plans (absent in plans written by ``synthct
plan``: the paper's defaults, 1000 epochs), then applies ``$SYNTHCT_TRAIN_CONFIG`` (see
:func:`synthct.training.config.with_env_overrides`), e.g. ``SYNTHCT_TRAIN_CONFIG='{"epochs": 300}'``.
"""

from pathlib import Path

#: Absolute path of this folder (the value for ``nnUNet_extTrainer``).
PATH = str(Path(__file__).resolve().parent)
