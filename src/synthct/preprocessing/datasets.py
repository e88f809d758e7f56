"""Dataset ids → nnU-Net dataset names, with an error that lists the datasets that exist."""

from __future__ import annotations

from synthct.paths import resolve_nnunet_paths


def existing_datasets() -> list[str]:
    """The ``DatasetNNN_Name`` folders in $nnUNet_raw, $nnUNet_preprocessed and $nnUNet_results (sorted, unique)."""
    paths = resolve_nnunet_paths()
    found: set[str] = set()
    for folder in (paths.raw, paths.preprocessed, paths.results):
        if folder is not None and folder.is_dir():
            found.update(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("Dataset"))
    return sorted(found)


def dataset_name(dataset: int | str) -> str:
    """nnU-Net's name of ``dataset`` (an id such as 511 or "511", or a ``DatasetNNN_Name``).

    Raises:
        ValueError: no such dataset in the nnU-Net folders; the message lists those that exist.
    """
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    value = int(dataset) if isinstance(dataset, str) and dataset.isdigit() else dataset
    try:
        return maybe_convert_to_dataset_name(value)
    except RuntimeError:
        known = existing_datasets()
        paths = resolve_nnunet_paths()
        where = ", ".join(str(p) for p in (paths.raw, paths.preprocessed, paths.results) if p is not None) or "none set"
        raise ValueError(f"no dataset {dataset!r} in the nnU-Net folders ({where}); existing: "
                         f"{', '.join(known) or 'none'}") from None


__all__ = ["dataset_name", "existing_datasets"]
