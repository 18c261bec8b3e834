"""The test split, touched once at the end of a run: the final weights, and the checkpoint chosen on validation.

Everything a run chooses (best/, and raw weights or EMA for it) reads the validation split; the test numbers
reported are of checkpoints that were not chosen on them. A run without a validation split chooses nothing: its
evaluations during training read the test split, for monitoring only."""
import json
import os

FIELDS = ("top_1", "top_5", "loss", "num_examples")
RESULTS_FILE = os.path.join("eval", "metrics.json")


def better_weights(metrics):
    """('raw' or 'ema', their metrics): the weights with the higher validation top-1 (the EMA on a tie)."""
    averaged = metrics.get("ema")
    if averaged is not None and averaged["top_1"] >= metrics["top_1"]:
        return "ema", averaged
    return "raw", metrics


def test_at_end(evaluate, last, ckpts, step):
    """{'final': the test metrics of the final weights (raw, and 'ema' with an EMA), 'best_on_validation': those
    of the best kept checkpoint with the weights chosen for it (runs with a validation split)}.

    evaluate: the run's Evaluation; last: its metrics at the final step, when it read the test split."""
    if evaluate.split == "test":  # no validation split: the evaluation at the final step was the test split
        return {"final": _entry(last or evaluate(), step, ckpts.latest)}
    final = evaluate.test()
    results = {"final": _entry(final, step, ckpts.latest)}
    records = ckpts.best.records()
    if records:
        best = records[0]
        if best["step"] != step:
            ckpts.restore_best()
            chosen = evaluate.test()
        else:
            chosen = final
        chosen = chosen.get("ema", chosen) if best["weights"] == "ema" else chosen
        results["best_on_validation"] = {
            **_entry(chosen, best["step"], best["checkpoint"]), "weights": best["weights"],
            "validation_top_1": best["top_1"]}
    return results


def _entry(metrics, step, checkpoint):
    entry = {"split": "test", "step": step, "checkpoint": checkpoint, **{k: metrics[k] for k in FIELDS}}
    if "ema" in metrics:
        entry["ema"] = {k: metrics["ema"][k] for k in FIELDS}
    return entry


def describe(results):
    """The final line's test numbers: 'test top-1 .. top-5 .. (final checkpoint); best on validation (...): ..'."""
    final = results["final"]
    line = f"test top-1 {final['top_1']:.4f}  top-5 {final['top_5']:.4f}"
    if "ema" in final:
        line += f"  EMA top-1 {final['ema']['top_1']:.4f}"
    best = results.get("best_on_validation")
    if best is None:
        return line + " (final checkpoint; no validation split, nothing selected)"
    return (f"{line} (final checkpoint);  best on validation: step {best['step']} ({best['weights']} weights, "
            f"validation top-1 {best['validation_top_1']:.4f}) test top-1 {best['top_1']:.4f}  "
            f"top-5 {best['top_5']:.4f}")


def write_results(model_dir, results):
    """eval/metrics.json: the test numbers of the final and the best checkpoint, under those names (eval.py
    adds its own evaluation beside them)."""
    path = os.path.join(model_dir, RESULTS_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump({"final": results["final"], **({"best_on_validation": results["best_on_validation"]}
                                                 if "best_on_validation" in results else {})}, f, indent=2)
    os.replace(path + ".tmp", path)
