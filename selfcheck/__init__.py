"""The suite measuring itself, apart from the product: `perf` (speed against peers and the
hardware, `imagen-bench perf`) and `trials` (kills, fuzzing, security, concurrency: `imagen-bench
trials`). Nothing in imagen/, bench/, drawbench/, human_eval/, reports/ or common/ imports this
package (tests/test_architecture.py); it may import all of them."""
