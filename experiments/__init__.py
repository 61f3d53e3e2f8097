"""Research tools of the tiny demo model, kept beside the package and not installed with it.

Run from the repository root with the package installed (`pip install -e .`): `python -m experiments.<name>`.
The configs under `experiments/configs/` train the models they probe (`accelerate launch training/sft.py --config
experiments/configs/<name>.yaml`); docs/elysium-tiny/ reports what they found. Nothing in `elysium` imports this
folder.

- `pixel_reliance`: does a model read the pixels (its loss on a sample's own frames vs another sample's)?
- `localization`: grounding scores and looks probes on generated tracks; `feature_probe`: linear probes of the
  image tokens; `gradient_by_module`: where a stage's gradient goes;
- `named_probe`, `text_first`, `rec_probe`: the named-squares and whole-frame REC probes.
"""
