"""Sharded and data-parallel training across processes: ``predictions`` (what each rank should hold and
move), ``engines`` (the model wrapped by torch's DDP, ZeRO-1 or FSDP2), ``instruments`` (what a rank
measures of itself), ``figures`` (a case's figures from its ranks' reports) and ``rank`` (what each rank
runs under torchrun). The scenario that starts the ranks is ``scenarios/train_distributed``."""
