"""Diagnostics of a trained cascade on the shapes world (research tools, run as modules):
stage_check (which stage loses the prompt), order_check (does the text encoder tell "A rel B" from
"B rel A"), swap_check (does the base follow word order). They live with the benchmark: they need
the model (imagen) and the prompt world (drawbench), which bench alone may import together."""
