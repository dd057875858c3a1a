"""``make bench``: vaegan's training speed and memory against the alternatives, side by side.

Every number is a ratio of two variants timed in interleaved repeats on the same machine, so
a noisy, shared machine moves both sides alike; every vaegan figure is the real
``VAEGAN.training_step``, built by ``vaegan.train.build_module`` and driven by
``Trainer.fit``. ``python -m vaegan.bench --help``.

Reading order:

- ``__main__``: the command line and the list of sections, one per row of the table;
- ``config``: the composed config the bench trains, and the profiles (sizes, repeats);
- ``context``: what a section gets (profile, device, configs, data, a fit per variant);
- ``fit``: ``build`` + ``Trainer.fit`` with a ``BatchClock``, the only way a step runs;
- ``reference``: ``LDMReference``, LDM's two-forward step on the same module;
- ``model_changes``: speed flags that are no config key, and LDM's model ops;
- ``timing``, ``table``: interleaved repeats and paired ratios; rows and their markdown;
- the sections: ``overhead`` (rows 1, 6), ``callbacks_cost`` (2), ``designs`` (3),
  ``memory_rows`` (4, with ``memory``: the peak of one fit in a fresh process, and
  ``anatomy``: the saved-activation split), ``scaling`` (5), ``flags`` (7), ``ddp_cost``,
  ``peers``;
- ``gpu``: ``make bench-gpu``, the same pieces at Stable Diffusion's scale on one GPU;
- ``flops``: FLOPs per network of one real step (``docs/performance.md``).
"""
