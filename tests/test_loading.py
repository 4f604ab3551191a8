"""The load strategies on a micro model written in the three checkpoint forms: each loads the same
weights (outputs equal to the plain load's, bf16 within its rounding), offloading places part of the
model on disk, and a missing form is one clear error naming the path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfgate.subjects.techniques.loading import (
    EmptyThenDispatch,
    LoadStrategy,
    OffloadToDisk,
    Pickled,
    RandomInitThenStateDict,
    Sharded,
    SingleFile,
    _mapped_device,
)

TASK = "text-classification"


@pytest.fixture(scope="module")
def micro_forms(micro_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import transformers

    from fixtures.models import write_checkpoint_forms

    target = tmp_path_factory.mktemp("forms")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(micro_model_dir)
    write_checkpoint_forms(model, target, "1MB", tokenizer=micro_model_dir)
    return target


def logits(strategy: LoadStrategy, forms: Path, workdir: Path):  # type: ignore[no-untyped-def]
    import torch
    import transformers

    module, details = strategy.load(TASK, forms, workdir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(forms)
    with torch.inference_mode():
        out = module(**tokenizer(["The train was late.", "A cat sat."], padding=True, return_tensors="pt"))
    return out.logits.float(), details


def test_the_forms_hold_what_their_names_say(micro_forms):
    assert len(list((micro_forms / "sharded").glob("*.safetensors"))) > 1
    assert (micro_forms / "sharded" / "model.safetensors.index.json").is_file()
    assert (micro_forms / "bin" / "pytorch_model.bin").is_file()


@pytest.mark.parametrize("strategy", [Sharded(), Pickled(), OffloadToDisk(), EmptyThenDispatch(),
                                      RandomInitThenStateDict()])  # fmt: skip
def test_every_fp32_strategy_loads_the_same_weights(micro_forms, tmp_path, strategy):
    import torch

    reference, _ = logits(SingleFile(), micro_forms, tmp_path)
    produced, _ = logits(strategy, micro_forms, tmp_path)
    assert torch.equal(reference, produced)


def test_a_random_init_without_the_checkpoint_would_differ(micro_forms, tmp_path):
    """The equality above can fail: the anti-pattern's module before load_state_dict is not the model."""
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(micro_forms)
    random = transformers.AutoModelForSequenceClassification.from_config(config).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(micro_forms)
    with torch.inference_mode():
        unloaded = random(**tokenizer(["The train was late.", "A cat sat."], padding=True, return_tensors="pt"))
    reference, _ = logits(SingleFile(), micro_forms, tmp_path)
    assert not torch.equal(reference, unloaded.logits.float())


def test_a_missing_form_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load-sharded reads the sharded checkpoint at .*sharded.*rebuild"):
        Sharded().checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("name", "where"),
    [("transformer.h.3.mlp.c_fc.weight", "disk"), ("transformer.h.30.attn.bias", "cpu"),
     ("transformer.wte.weight", "cuda:0"), ("lm_head.weight", "cpu")],
)  # fmt: skip
def test_a_tensor_takes_the_device_of_the_longest_prefix_that_names_it(name, where):
    device_map = {"transformer.wte": 0, "transformer.h.3": "disk", "transformer.h.30": "cpu", "": "cpu"}
    assert _mapped_device(device_map, name) == where


def copy_form(micro_forms: Path, form: str, target: Path) -> Path:
    import shutil

    shutil.copytree(
        micro_forms / form if form else micro_forms, target, ignore=shutil.ignore_patterns("sharded", "bin")
    )
    return target


def test_an_index_naming_a_missing_shard_is_refused_naming_both(micro_forms, tmp_path):
    from perfgate.errors import CheckpointError

    broken = copy_form(micro_forms, "sharded", tmp_path / "forms" / "sharded")
    shard = sorted(broken.glob("*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(CheckpointError, match=rf"index.json.*names shard '{shard.name}', which is missing.*re-save"):
        Sharded().checkpoint(broken.parent)


def test_a_truncated_safetensors_file_is_refused_with_the_bytes_missing(micro_forms, tmp_path):
    from perfgate.errors import CheckpointError

    broken = copy_form(micro_forms, "", tmp_path / "truncated")
    weights = broken / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as stream:
        stream.truncate(size - 1000)
    with pytest.raises(
        CheckpointError, match=r"model.safetensors.*truncated: its header describes \d+ bytes.*1000 missing"
    ):
        SingleFile().checkpoint(broken)
    with weights.open("r+b") as stream:
        stream.truncate(4)
    with pytest.raises(CheckpointError, match="truncated: 4 bytes, shorter than its own header"):
        SingleFile().checkpoint(broken)


def test_the_largest_layer_is_read_from_the_headers(micro_forms):
    from perfgate.subjects.techniques.loading import largest_layer

    name, size = largest_layer(micro_forms)
    assert name == "bert.embeddings.word_embeddings"
    assert size == 30522 * 32 * 4


def test_a_ram_budget_below_the_largest_layer_is_refused_before_loading(micro_forms, tmp_path, monkeypatch):
    from perfgate.errors import CheckpointError

    strategy = OffloadToDisk()
    monkeypatch.setattr(strategy, "max_memory_cpu", 2**20)
    message = r"max_memory cpu=1 MiB is smaller than its largest layer, bert.embeddings.word_embeddings \(4 MiB\)"
    with pytest.raises(CheckpointError, match=message + ".*allow at least 4 MiB"):
        strategy.load(TASK, micro_forms, tmp_path)


def test_an_offload_folder_that_cannot_be_written_is_refused(micro_forms, tmp_path, monkeypatch):
    from perfgate.errors import CheckpointError

    strategy = EmptyThenDispatch()
    monkeypatch.setattr(strategy, "folder", lambda workdir: Path("/proc/perfgate-offload"))
    with pytest.raises(CheckpointError, match=r"/proc/perfgate-offload.*offload folder cannot be written.*writable"):
        strategy.load(TASK, micro_forms, tmp_path)


def test_the_gpu_split_asks_for_a_budget_on_each_device_and_skips_on_a_cpu(tmp_path):
    from perfgate.subjects.techniques.loading import OffloadAcrossGpuCpuDisk

    strategy = OffloadAcrossGpuCpuDisk()
    options = strategy.options(tmp_path)
    assert options["max_memory"] == {0: 150 * 2**20, "cpu": 150 * 2**20}
    assert options["device_map"] == "auto"
    assert Path(options["offload_folder"]).is_dir()
    assert strategy.unavailable_reason("text-generation", "cpu") == "load-gpu-cpu-disk runs on cuda, not cpu"


def test_low_cpu_mem_usage_is_discarded_by_the_installed_transformers():
    """Why it is not a strategy: from_pretrained pops the flag unused (transformers 4.57 and 5; loading is
    always onto the meta device first). When a release honours it again, this fails: add it then."""
    import inspect

    import transformers

    source = inspect.getsource(transformers.PreTrainedModel.from_pretrained)
    discarded = '_ = kwargs.pop("low_cpu_mem_usage", None)' in source or (
        '"low_cpu_mem_usage"' in source and "Not used anymore" in source
    )
    assert discarded, f"transformers {transformers.__version__} may use low_cpu_mem_usage again"
