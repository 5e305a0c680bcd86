"""The shared floor: what every package may import, importing none of them and no torch.

errors.py         UserError (one line, exit 2) and check_choice (a name from a fixed set)
files.py          writability checks, sha256, the one family of atomic writes
version.py        the package version, recorded in every result
imagestore.py     images mapped to prompts: a run folder, an image folder, COCO as downloaded
runs.py           the run-folder contract's axes (SAMPLING_AXES, CELL_AXES)
training_log.py   a stage's training log (log.csv, init_log.csv) and its reader
tables.py         CSV writing that neutralises spreadsheet formulas
allocator.py      the process's malloc rule: big CPU tensors reuse freed memory (no torch needed)
blas.py           the process's BLAS rule: MKL's strict reproducibility, the same bits in every process
"""
