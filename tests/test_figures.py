import matplotlib.image
import numpy as np

from mmjax import figures, report


def _texts(figure) -> list[str]:
    axes = figure.axes[0]
    return [t.get_text() for t in axes.texts]


def test_a_confusion_figure_names_the_classes_and_shows_counts_and_row_shares(tmp_path):
    confusion = np.array([[50, 3, 2], [10, 20, 5], [0, 0, 0]])
    figure = figures.confusion_figure(confusion, ["negative", "neutral", "positive"], "sentiment: test split, step 7")
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["negative", "neutral", "positive"]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["negative (55)", "neutral (35)", "positive (0)"]
    assert axes.get_title() == "sentiment: test split, step 7"
    texts = _texts(figure)
    assert texts[0] == "50\n91%" and texts[3] == "10\n29%" and texts[8] == "–"  # row shares; no examples
    path = str(tmp_path / "c.png")
    figures.save_png(figure, path)
    assert matplotlib.image.imread(path).shape[2] in (3, 4)


def test_evaluation_writes_one_figure_per_task(tmp_path):
    result = {"sarcasm": {"confusion": [[5, 1], [2, 3]], "labels": ["none", "sarcastic"]},
              "humor": {"confusion": [[1, 0], [0, 1]], "labels": ["none", "humor"]}}
    names = report.write_confusion_pngs(result, str(tmp_path), "validation", "step 40")
    assert names == {"sarcasm": "confusion_validation_sarcasm.png", "humor": "confusion_validation_humor.png"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names.values())
