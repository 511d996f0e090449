"""Ray-side wrappers of the operators: the same callables, plus the node each row was processed on.

One module per stage, so that a decode worker imports neither torch nor open_clip (Ray imports a stage's
module in its worker). The node columns make placement observable (the summary's ``nodes``), which is how
the two-node test proves that work ran on both nodes.
"""
