"""Ray-side stages of the index job: the operators wrapped for Ray Data's ``map_batches``.

One module per stage, so that a decode worker imports neither torch nor open_clip (Ray imports a stage's
module in its worker). Stage batches are operators/rows.py's layout.
"""
