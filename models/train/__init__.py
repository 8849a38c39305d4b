"""Training InfusionNet / AesFA (docs/training.md), apart from the networks it trains.

    config        TrainConfig: every setting of a run, validated; the LR schedule
    trainer       Trainer and train(): the loop, one process or several under torchrun
    processes     devices, torchrun process groups, seeding
    state         the resume state in a checkpoint; --resume
    reporting     metrics.csv, TensorBoard, the progress bar
    sample_grids  the sample grids written during and after a run
    losses        VGG encoders, the content / EFDM style / contrastive losses
    hed_vgg       HED's VGG16 as an offline loss network
    data          the deterministic (content, style) stream from image folders

``infusionnet train`` (cli/train.py) is the front door; the networks and checkpoint I/O it uses
are the parent package's.
"""
